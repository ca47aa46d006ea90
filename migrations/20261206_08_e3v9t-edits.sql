-- Edits and retraction (README "Edits and retraction"): a message's current version number,
-- read from the message's own row (locked by the edit), so concurrent edits number their
-- versions 1..n without gaps or repeats: an edit keeps the replaced content in
-- message_versions as version `version` and moves the message to version + 1.
-- depends: 20261206_03_h3m7q-shared-conversations

ALTER TABLE messages ADD COLUMN version integer NOT NULL DEFAULT 1;
