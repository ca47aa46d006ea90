-- Feedback (README "Feedback"): a score, when given, is a finite number from 0 to 10. The
-- gateway refuses others first (422); the constraint holds for every other writer too, and
-- refuses NaN and the infinities as well (in PostgreSQL NaN sorts above every number).
-- depends: 20261206_03_h3m7q-shared-conversations

ALTER TABLE message_feedback
    ADD CONSTRAINT message_feedback_score_check CHECK (score >= 0 AND score <= 10);
