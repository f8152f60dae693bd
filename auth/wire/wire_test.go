package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	b := NewBuilder(nil).U8(7).U16(0x1234).U32(0xdeadbeef).U64(1 << 60).I64(-5).
		Fixed([]byte{1, 2, 3}).Bytes([]byte("hello")).String("grüße").Count(2).Out()
	r := NewReader(b)
	if r.U8() != 7 || r.U16() != 0x1234 || r.U32() != 0xdeadbeef || r.U64() != 1<<60 || r.I64() != -5 {
		t.Fatal("integers")
	}
	if !bytes.Equal(r.Fixed(3), []byte{1, 2, 3}) || string(r.Bytes(5)) != "hello" || r.String(16) != "grüße" || r.Count(2, 0) != 2 {
		t.Fatal("byte fields")
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
}

func TestReaderRejects(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		read func(r *Reader)
	}{
		{"truncated u32", []byte{1, 2}, func(r *Reader) { r.U32() }},
		{"bytes over cap", NewBuilder(nil).Bytes([]byte("abcdef")).Out(), func(r *Reader) { r.Bytes(5) }},
		{"bytes truncated", []byte{0, 0, 0, 9, 1}, func(r *Reader) { r.Bytes(100) }},
		{"invalid utf8", NewBuilder(nil).Bytes([]byte{0xff, 0xfe}).Out(), func(r *Reader) { r.String(10) }},
		{"count over cap", NewBuilder(nil).Count(11).Out(), func(r *Reader) { r.Count(10, 0) }},
		{"count cannot fit", NewBuilder(nil).Count(1000).Out(), func(r *Reader) { r.Count(1<<20, 32) }},
		{"trailing", []byte{1, 2}, func(r *Reader) { r.U8() }},
		{"sticky", []byte{1}, func(r *Reader) { r.U32(); r.U8() }},
		{"failf", []byte{1}, func(r *Reader) { r.U8(); r.Failf("bad value") }},
	}
	for _, c := range cases {
		r := NewReader(c.in)
		c.read(r)
		if err := r.Finish(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range [][]byte{{1}, bytes.Repeat([]byte{9}, 70000)} {
		if err := WriteFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{1, 70000} {
		p, err := ReadFrame(&buf, 0)
		if err != nil || len(p) != want {
			t.Fatalf("got %d bytes, %v", len(p), err)
		}
	}
	if _, err := ReadFrame(&buf, 0); err != io.EOF {
		t.Fatalf("clean end: %v", err)
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty frame", []byte{0, 0, 0, 0}, ErrMalformed},
		{"too large", []byte{0, 0, 1, 0}, ErrFrameTooLarge},
		{"cut header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"cut payload", []byte{0, 0, 0, 5, 1, 2}, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		if _, err := ReadFrame(bytes.NewReader(c.in), 100); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if err := WriteFrame(io.Discard, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("empty payload written: %v", err)
	}
}

// FuzzReadFrame: no stream makes ReadFrame panic or return a payload over
// the limit; every frame it returns re-frames to the bytes it consumed.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 7})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add(AppendFrame(AppendFrame(nil, []byte("ab")), []byte("c")))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		consumed := 0
		for {
			p, err := ReadFrame(r, 64)
			if err != nil {
				return
			}
			if len(p) == 0 || len(p) > 64 {
				t.Fatalf("payload of %d bytes", len(p))
			}
			fr := AppendFrame(nil, p)
			if !bytes.Equal(fr, in[consumed:consumed+len(fr)]) {
				t.Fatal("frame does not re-encode")
			}
			consumed += len(fr)
		}
	})
}

// FuzzReader: arbitrary input read as a mixed message never panics, and
// what reads cleanly re-encodes to the same bytes.
func FuzzReader(f *testing.F) {
	f.Add(NewBuilder(nil).U8(1).String("x").Count(1).Fixed(make([]byte, 4)).Out())
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		a := r.U8()
		s := r.String(32)
		n := r.Count(8, 4)
		items := make([][]byte, n)
		for i := range items {
			items[i] = r.Fixed(4)
		}
		if r.Finish() != nil {
			return
		}
		w := NewBuilder(nil).U8(a).String(s).Count(n)
		for _, it := range items {
			w.Fixed(it)
		}
		if !bytes.Equal(w.Out(), in) {
			t.Fatalf("% x re-encodes as % x", in, w.Out())
		}
	})
}
