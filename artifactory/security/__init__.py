"""Users, roles, tokens, the authentication chain and permission checks."""
