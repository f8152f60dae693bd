package auth

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/wire"
)

// Frame types: the first byte of every frame payload on a connection.
const (
	frameHello  = 1 // LAG -> BV, in clear: certificate, schemes, linking base
	frameHS1    = 2 // first Noise handshake message, BV -> LAG (NK)
	frameHS2    = 3 // second Noise handshake message, responder -> initiator
	frameData   = 4 // Noise transport messages
	frameLink   = 5 // first Noise handshake message, LAG -> CA (IK)
	frameEnrol  = 6 // first Noise handshake message, BV or LAG -> CA (NK)
	frameReject = 7 // in clear, before a channel exists: one reject code
	// FrameKeepalive, alone in a frame of one byte, keeps an idle
	// connection open. It carries nothing and is handled by the shells
	// (authnet), never by a party: a connection's read deadline restarts
	// on it, and the CA answers one on a LAG's link so the LAG can tell
	// a dead link.
	FrameKeepalive = 9
)

// Noise prologues: each connection kind has its own, so a handshake of one
// kind can never complete as another.
const (
	prologueBVLAG = "gridveil/auth/1 bv-lag\x00"
	prologueLink  = "gridveil/auth/1 lag-ca\x00"
	prologueEnrol = "gridveil/auth/1 enrol\x00"
)

// dh25519 is Noise's 25519 DH function (RFC 7748 X25519) on
// cloudflare/circl's assembly Montgomery ladder, stateless, so one value
// serves every channel. flynn/noise's own DH25519 goes through x/crypto's
// curve25519.X25519, and crypto/ecdh needs an ecdh.PrivateKey per key,
// whose constructor computes the public key: each costs a scalar
// multiplication the handshake does not need. Here a key pair costs one
// fixed-base multiplication (circl's precomputed table, about a third of a
// ladder) and each DH one ladder, about a quarter faster than crypto/ecdh's
// on this machine (docs/PERFORMANCE.md). Same function, same bytes: tested
// against crypto/ecdh, low-order points included.
type dh25519 struct{}

func (dh25519) GenerateKeypair(r io.Reader) (noise.DHKey, error) {
	var priv, pub x25519.Key
	if _, err := io.ReadFull(r, priv[:]); err != nil {
		return noise.DHKey{}, err
	}
	x25519.KeyGen(&pub, &priv)
	return noise.DHKey{Private: priv[:], Public: pub[:]}, nil
}

func (dh25519) DH(priv, pub []byte) ([]byte, error) {
	if len(priv) != x25519.Size || len(pub) != x25519.Size {
		return nil, fmt.Errorf("X25519 keys of %d and %d bytes", len(priv), len(pub))
	}
	var shared x25519.Key
	ok := x25519.Shared(&shared, (*x25519.Key)(priv), (*x25519.Key)(pub))
	// Shared reports a low-order public key; the all-zero check is
	// crypto/ecdh's own rule, kept so that the two refuse exactly the same
	// inputs whatever circl's list of low-order points.
	if !ok || subtle.ConstantTimeCompare(shared[:], make([]byte, x25519.Size)) == 1 {
		return nil, errors.New("X25519: low-order public key")
	}
	return shared[:], nil
}

func (dh25519) DHLen() int     { return 32 }
func (dh25519) DHName() string { return "25519" }

// staticKey is a party's Noise static key, its public half recomputed
// from the private one.
type staticKey struct {
	dh noise.DHKey
}

func newStaticKey(k noise.DHKey) (staticKey, error) {
	ec, err := ecdh.X25519().NewPrivateKey(k.Private)
	if err != nil {
		return staticKey{}, fmt.Errorf("%w: X25519 key: %w", ErrMalformed, err)
	}
	return staticKey{dh: noise.DHKey{Private: ec.Bytes(), Public: ec.PublicKey().Bytes()}}, nil
}

// cipherSuite is the channels' Noise suite: 25519, ChaCha20-Poly1305,
// SHA-256. Built once: it holds no state.
var cipherSuite = noise.NewCipherSuite(dh25519{}, noise.CipherChaChaPoly, noise.HashSHA256)

// maxChunk is the largest plaintext in one Noise transport message (65535
// bytes less the AEAD tag, less our continuation byte).
const maxChunk = noise.MaxMsgLen - 16 - 1

// channel is a Noise session: a handshake, then two cipher states. It is
// pure: the caller carries its messages. Any failure kills it.
type channel struct {
	hs        *noise.HandshakeState
	enc, dec  *noise.CipherState
	binding   [32]byte
	initiator bool
	dead      bool
}

func newChannel(p noise.HandshakePattern, initiator bool, prologue []byte, static staticKey, peer []byte) (*channel, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Random:        rand.Reader,
		Pattern:       p,
		Initiator:     initiator,
		Prologue:      prologue,
		StaticKeypair: static.dh,
		PeerStatic:    peer,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrChannel, err)
	}
	return &channel{hs: hs, initiator: initiator}, nil
}

func (c *channel) ready() bool { return c.enc != nil && !c.dead }

func (c *channel) finish(cs1, cs2 *noise.CipherState) {
	if cs1 == nil {
		return
	}
	if c.initiator {
		c.enc, c.dec = cs1, cs2
	} else {
		c.enc, c.dec = cs2, cs1
	}
	copy(c.binding[:], c.hs.ChannelBinding())
}

// write produces the next handshake message carrying payload.
func (c *channel) write(payload []byte) ([]byte, error) {
	if c.dead || c.enc != nil {
		return nil, fmt.Errorf("%w: handshake already over", ErrState)
	}
	msg, cs1, cs2, err := c.hs.WriteMessage(nil, payload)
	if err != nil {
		c.dead = true
		return nil, fmt.Errorf("%w: %w", ErrChannel, err)
	}
	c.finish(cs1, cs2)
	return msg, nil
}

// read consumes the peer's next handshake message and returns its payload.
func (c *channel) read(msg []byte) ([]byte, error) {
	if c.dead || c.enc != nil {
		return nil, fmt.Errorf("%w: handshake already over", ErrState)
	}
	if len(msg) > noise.MaxMsgLen {
		c.dead = true
		return nil, fmt.Errorf("%w: handshake message of %d bytes", ErrMalformed, len(msg))
	}
	payload, cs1, cs2, err := c.hs.ReadMessage(nil, msg)
	if err != nil {
		c.dead = true
		return nil, fmt.Errorf("%w: handshake: %w", ErrChannel, err)
	}
	c.finish(cs1, cs2)
	return payload, nil
}

// seal encrypts one message of any length as a frameData payload: chunks of
// (u16 length | Noise ciphertext of (more-flag | data)).
func (c *channel) seal(pt []byte) ([]byte, error) {
	if !c.ready() {
		return nil, fmt.Errorf("%w: channel not established", ErrState)
	}
	out := []byte{frameData}
	for first := true; first || len(pt) > 0; first = false {
		n := min(len(pt), maxChunk)
		more := byte(0)
		if n < len(pt) {
			more = 1
		}
		chunk := append([]byte{more}, pt[:n]...)
		pt = pt[n:]
		ct, err := c.enc.Encrypt(nil, nil, chunk)
		if err != nil {
			c.dead = true
			return nil, fmt.Errorf("%w: %w", ErrChannel, err)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(ct)))
		out = append(out, ct...)
	}
	return out, nil
}

// sealMsg is seal(encode(m)), built in one buffer: m is encoded straight
// after the frame's header and encrypted in place, one allocation where
// seal(encode(m)) makes four or five. Every message to a vehicle fits one
// chunk; a longer one goes through seal. Same bytes either way.
func (c *channel) sealMsg(m message) ([]byte, error) {
	if !c.ready() {
		return nil, fmt.Errorf("%w: channel not established", ErrState)
	}
	const hdr = 1 + 2 + 1 // frame type, chunk length, continuation flag
	buf := make([]byte, hdr, 768)
	buf[0] = frameData
	w := wire.NewBuilder(append(buf, m.kind()))
	m.put(w)
	buf = w.Out()
	if len(buf)-hdr > maxChunk {
		return c.seal(buf[hdr:])
	}
	// The ciphertext overwrites the plaintext it starts at (an exact
	// overlap, which AEAD.Seal allows).
	out, err := c.enc.Encrypt(buf[:3], nil, buf[3:])
	if err != nil {
		c.dead = true
		return nil, fmt.Errorf("%w: %w", ErrChannel, err)
	}
	binary.BigEndian.PutUint16(out[1:3], uint16(len(out)-3))
	return out, nil
}

// open decrypts a frameData payload (without its type byte).
func (c *channel) open(body []byte) ([]byte, error) {
	if !c.ready() {
		return nil, fmt.Errorf("%w: channel not established", ErrState)
	}
	pt, err := openTransport(c.dec, body)
	if err != nil {
		c.dead = true
	}
	return pt, err
}

// openTransport decrypts a frameData payload with a channel's receiving
// cipher alone, so that a LAG can decrypt a session's frame outside its
// lock while the session's sending cipher stays in use (Step). A failure
// must kill the channel: the caller does that.
func openTransport(dec *noise.CipherState, body []byte) ([]byte, error) {
	var pt []byte
	for {
		if len(body) < 2 {
			return nil, fmt.Errorf("%w: truncated transport message", ErrChannel)
		}
		n := int(binary.BigEndian.Uint16(body))
		if n < 17 || len(body)-2 < n {
			return nil, fmt.Errorf("%w: transport chunk of %d bytes", ErrChannel, n)
		}
		chunk, err := dec.Decrypt(nil, nil, body[2:2+n])
		if err != nil {
			return nil, fmt.Errorf("%w: decryption: %w", ErrChannel, err)
		}
		body = body[2+n:]
		pt = append(pt, chunk[1:]...)
		if chunk[0] == 0 {
			break
		}
		if chunk[0] != 1 {
			return nil, fmt.Errorf("%w: continuation flag %d", ErrChannel, chunk[0])
		}
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last chunk", ErrChannel, len(body))
	}
	return pt, nil
}
