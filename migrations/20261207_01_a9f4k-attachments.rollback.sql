-- Back to the schema of 20261206_09: every attachment and its bytes go.
DROP TABLE attachment_usage;
DROP FUNCTION mnemo_readable_attachments(uuid, uuid[]);
DROP TABLE message_attachments;
DROP FUNCTION mnemo_attachment_unreferenced();
DROP FUNCTION mnemo_attachment_referenced();
DROP TABLE attachment_thumbnails;
DROP TABLE attachment_chunks;
DROP TABLE attachments;
