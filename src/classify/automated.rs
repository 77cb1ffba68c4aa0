//! Machine-generated mail detection (STUB: to be implemented).
