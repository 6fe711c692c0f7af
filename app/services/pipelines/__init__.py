"""Pipeline records and what the API reports about them: activity, stats, health, readiness,
property values."""
