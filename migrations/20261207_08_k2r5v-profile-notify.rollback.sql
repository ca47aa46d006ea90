-- Inverse of 20261207_08_k2r5v-profile-notify: no triggers, no function.
DROP TRIGGER profiles_notify_truncate ON profiles;
DROP TRIGGER profiles_notify ON profiles;
DROP FUNCTION mnemo_notify_profiles();
