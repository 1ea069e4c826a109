//! The passphrase secrets manager. TODO(helper): implement.
