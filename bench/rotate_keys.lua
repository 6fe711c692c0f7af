-- wrk script: every request presents the next of many personal API keys, as many clients
-- would. WRK_KEYS_FILE holds one key per line; WRK_KEY_IN is "header" (Authorization:
-- Bearer) or "query" (?personal_api_key=...).
local keys = {}
for line in io.lines(os.getenv("WRK_KEYS_FILE")) do
  keys[#keys + 1] = line
end
local place = os.getenv("WRK_KEY_IN") or "header"
local i = 0

function setup(thread)
  -- threads start at different keys
  thread:set("offset", math.random(#keys))
end

function request()
  i = i + 1
  local key = keys[(i + (offset or 0)) % #keys + 1]
  if place == "query" then
    local sep = string.find(wrk.path, "?", 1, true) and "&" or "?"
    return wrk.format("GET", wrk.path .. sep .. "personal_api_key=" .. key)
  end
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. key})
end
