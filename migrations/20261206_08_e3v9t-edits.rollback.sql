-- Messages forget their version numbers (the versions kept stay in message_versions).
ALTER TABLE messages DROP COLUMN version;
