// Package wire is the byte layer of gridveil's authentication protocols
// (docs/ARCHITECTURE.md C6): a canonical field encoding for the messages that parties
// sign and exchange, and the length-prefixed framing that carries them over
// a stream such as TCP.
//
// Encoding. A message is a fixed sequence of fields, each written by a
// Builder and read back by a Reader in the same order:
//
//	u8, u16, u32, u64   big-endian unsigned integers
//	i64                 big-endian two's complement (times in Unix seconds)
//	fixed(n)            exactly n raw bytes (keys, hashes, signatures)
//	bytes               u32 length, then that many bytes (length <= a cap the reader names)
//	string              as bytes, and valid UTF-8
//	count               u32 element count of a list (<= a cap the reader names)
//
// There is exactly one encoding of every message (no optional fields, no
// varints, no trailing bytes), so that a signature over the encoding is a
// signature over the message, and a decoder that re-encodes what it read
// gets the input back. Readers fail with ErrMalformed, wrapped, and never
// panic or allocate more than the input's length plus the caps they were
// given.
//
// Framing. On a stream every frame is
//
//	length u32 big-endian | payload (length bytes, 1 <= length <= MaxFrame)
//
// ReadFrame refuses an empty frame and a length beyond the reader's limit
// before it allocates anything, so a peer cannot make a reader reserve more
// memory than the limit.
//
// Threat model. This package only parses: it protects a party against
// inputs that would crash it, loop, or make it allocate without bound. It
// authenticates nothing; integrity and confidentiality come from the Noise
// channels and signatures of package auth.
package wire
