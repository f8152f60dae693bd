package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every decoding error: truncated input, a length
// or count over its cap, invalid UTF-8, or bytes left over.
var ErrMalformed = errors.New("wire: malformed message")

// ErrFrameTooLarge is returned by ReadFrame for a frame longer than the limit.
var ErrFrameTooLarge = errors.New("wire: frame too large")

// MaxFrame is the default (and largest) frame payload, 4 MiB.
const MaxFrame = 4 << 20

// Builder appends fields to a message. Its zero value is ready to use.
type Builder struct {
	b []byte
}

// NewBuilder returns a Builder that appends to dst.
func NewBuilder(dst []byte) *Builder { return &Builder{b: dst} }

// U8 appends one byte.
func (w *Builder) U8(v uint8) *Builder { w.b = append(w.b, v); return w }

// U16 appends a big-endian uint16.
func (w *Builder) U16(v uint16) *Builder { w.b = binary.BigEndian.AppendUint16(w.b, v); return w }

// U32 appends a big-endian uint32.
func (w *Builder) U32(v uint32) *Builder { w.b = binary.BigEndian.AppendUint32(w.b, v); return w }

// U64 appends a big-endian uint64.
func (w *Builder) U64(v uint64) *Builder { w.b = binary.BigEndian.AppendUint64(w.b, v); return w }

// I64 appends a big-endian int64.
func (w *Builder) I64(v int64) *Builder { return w.U64(uint64(v)) }

// Fixed appends raw bytes without a length; the reader must know n.
func (w *Builder) Fixed(v []byte) *Builder { w.b = append(w.b, v...); return w }

// Bytes appends a u32 length and the bytes.
func (w *Builder) Bytes(v []byte) *Builder { return w.U32(uint32(len(v))).Fixed(v) }

// String appends a string as Bytes.
func (w *Builder) String(s string) *Builder { return w.U32(uint32(len(s))).Fixed([]byte(s)) }

// Count appends a list's element count.
func (w *Builder) Count(n int) *Builder { return w.U32(uint32(n)) }

// Out returns the message built so far.
func (w *Builder) Out() []byte { return w.b }

// Reader reads fields in order. The first failure sticks: later reads
// return zero values, and Err and Finish report the first error.
type Reader struct {
	b   []byte
	off int
	err error
}

// NewReader reads b. It does not copy b; Fixed and Bytes return copies.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

func (r *Reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (r *Reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail("%s: need %d bytes at offset %d, have %d", what, n, r.off, len(r.b)-r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	if s := r.take(1, "u8"); s != nil {
		return s[0]
	}
	return 0
}

// U16 reads a big-endian uint16.
func (r *Reader) U16() uint16 {
	if s := r.take(2, "u16"); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

// U32 reads a big-endian uint32.
func (r *Reader) U32() uint32 {
	if s := r.take(4, "u32"); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

// U64 reads a big-endian uint64.
func (r *Reader) U64() uint64 {
	if s := r.take(8, "u64"); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

// I64 reads a big-endian int64.
func (r *Reader) I64() int64 { return int64(r.U64()) }

// Fixed reads exactly n bytes into a new slice.
func (r *Reader) Fixed(n int) []byte {
	s := r.take(n, "fixed field")
	if s == nil {
		return nil
	}
	return append([]byte(nil), s...)
}

// FixedInto reads len(dst) bytes into dst.
func (r *Reader) FixedInto(dst []byte) {
	if s := r.take(len(dst), "fixed field"); s != nil {
		copy(dst, s)
	}
}

// Bytes reads a length-prefixed byte string of at most max bytes.
func (r *Reader) Bytes(max int) []byte {
	n := r.U32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.fail("byte string of %d bytes over the cap %d", n, max)
		return nil
	}
	s := r.take(int(n), "byte string")
	if s == nil {
		return nil
	}
	return append([]byte{}, s...)
}

// String reads a length-prefixed UTF-8 string of at most max bytes.
func (r *Reader) String(max int) string {
	b := r.Bytes(max)
	if r.err == nil && !utf8.Valid(b) {
		r.fail("string is not valid UTF-8")
		return ""
	}
	return string(b)
}

// Count reads a list's element count, at most max, and checks that the
// rest of the input could hold that many elements of at least minElem
// bytes each, so that a caller can allocate the list safely.
func (r *Reader) Count(max, minElem int) int {
	n := r.U32()
	if r.err != nil {
		return 0
	}
	if uint64(n) > uint64(max) {
		r.fail("list of %d elements over the cap %d", n, max)
		return 0
	}
	if minElem > 0 && uint64(n)*uint64(minElem) > uint64(len(r.b)-r.off) {
		r.fail("list of %d elements cannot fit in %d bytes", n, len(r.b)-r.off)
		return 0
	}
	return int(n)
}

// Remaining is the number of unread bytes.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// Err is the first error, if any.
func (r *Reader) Err() error { return r.err }

// Failf records a semantic error found by the caller (a field out of its
// range), wrapped in ErrMalformed, unless an error is already recorded.
func (r *Reader) Failf(format string, args ...any) { r.fail(format, args...) }

// Finish returns the first error, or ErrMalformed if bytes are left over.
func (r *Reader) Finish() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}

// AppendFrame appends a frame holding payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// WriteFrame writes one frame. Payloads must be 1..MaxFrame bytes.
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) == 0 || len(payload) > MaxFrame {
		return fmt.Errorf("%w: payload of %d bytes (1..%d)", ErrFrameTooLarge, len(payload), MaxFrame)
	}
	if _, err := w.Write(AppendFrame(make([]byte, 0, 4+len(payload)), payload)); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame whose payload is at most limit bytes (limit <= 0
// or over MaxFrame means MaxFrame). It returns io.EOF only if the stream
// ended cleanly before a frame began, and io.ErrUnexpectedEOF if it ended
// inside one.
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	if limit <= 0 || limit > MaxFrame {
		limit = MaxFrame
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes over the limit %d", ErrFrameTooLarge, n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
