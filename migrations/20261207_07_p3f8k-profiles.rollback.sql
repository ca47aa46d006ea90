-- Back to no profiles (their secrets go with them).
DROP TABLE profiles;
