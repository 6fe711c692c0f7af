"""Identity: organizations, projects, environments, users, memberships and personal API keys."""
