"""Operations (API.md §7): the record of every asynchronous change to a warehouse."""
