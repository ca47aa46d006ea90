-- Back to any score.
ALTER TABLE message_feedback DROP CONSTRAINT message_feedback_score_check;
