//! Paper broker and account: exact money, explicit fees and sizing.
