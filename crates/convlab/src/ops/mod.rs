//! Checked, shaped functional ops. Each file holds one op family: its
//! parameters and validation, the forward and backward passes side by side,
//! and the plain reference loop every fast path is tested against.
