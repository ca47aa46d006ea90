-- Inverse of 20261123_01_u7k2p-create-users-tokens.
DROP TABLE api_tokens;
DROP TABLE users;
