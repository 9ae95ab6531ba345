//! Remote scripts live in src/remote/*.sh and are embedded where they are used.
