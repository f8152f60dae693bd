package auth

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/flynn/noise"
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
)

// Noise prologues: each connection kind has its own, so a handshake of one
// kind can never complete as another.
const (
	prologueBVLAG = "gridveil/auth/1 bv-lag\x00"
	prologueLink  = "gridveil/auth/1 lag-ca\x00"
	prologueEnrol = "gridveil/auth/1 enrol\x00"
)

// dh25519 is Noise's 25519 DH function on the standard library's
// crypto/ecdh, one per channel. flynn/noise's own DH25519 goes through
// x/crypto's curve25519.X25519, which builds an ecdh.PrivateKey (a scalar
// multiplication for its public key) on every call; keeping the key
// objects of this channel's static and ephemeral keys halves the
// handshake's scalar multiplications. Same function, same bytes.
type dh25519 struct {
	keys map[[32]byte]*ecdh.PrivateKey
}

func (d *dh25519) GenerateKeypair(r io.Reader) (noise.DHKey, error) {
	k, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		return noise.DHKey{}, err
	}
	d.keys[[32]byte(k.Bytes())] = k
	return noise.DHKey{Private: k.Bytes(), Public: k.PublicKey().Bytes()}, nil
}

func (d *dh25519) DH(priv, pub []byte) ([]byte, error) {
	if len(priv) != 32 {
		return nil, fmt.Errorf("X25519 private key of %d bytes", len(priv))
	}
	k := d.keys[[32]byte(priv)]
	if k == nil {
		var err error
		if k, err = ecdh.X25519().NewPrivateKey(priv); err != nil {
			return nil, err
		}
		d.keys[[32]byte(priv)] = k
	}
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return k.ECDH(p) // refuses low-order points (an all-zero result)
}

func (d *dh25519) DHLen() int     { return 32 }
func (d *dh25519) DHName() string { return "25519" }

// staticKey is a party's Noise static key with its ecdh object.
type staticKey struct {
	dh noise.DHKey
	ec *ecdh.PrivateKey
}

func newStaticKey(k noise.DHKey) (staticKey, error) {
	ec, err := ecdh.X25519().NewPrivateKey(k.Private)
	if err != nil {
		return staticKey{}, fmt.Errorf("%w: X25519 key: %w", ErrMalformed, err)
	}
	return staticKey{dh: noise.DHKey{Private: ec.Bytes(), Public: ec.PublicKey().Bytes()}, ec: ec}, nil
}

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
	dh := &dh25519{keys: make(map[[32]byte]*ecdh.PrivateKey, 2)}
	if static.ec != nil {
		dh.keys[[32]byte(static.ec.Bytes())] = static.ec
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   noise.NewCipherSuite(dh, noise.CipherChaChaPoly, noise.HashSHA256),
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

// open decrypts a frameData payload (without its type byte).
func (c *channel) open(body []byte) ([]byte, error) {
	if !c.ready() {
		return nil, fmt.Errorf("%w: channel not established", ErrState)
	}
	var pt []byte
	for {
		if len(body) < 2 {
			c.dead = true
			return nil, fmt.Errorf("%w: truncated transport message", ErrChannel)
		}
		n := int(binary.BigEndian.Uint16(body))
		if n < 17 || len(body)-2 < n {
			c.dead = true
			return nil, fmt.Errorf("%w: transport chunk of %d bytes", ErrChannel, n)
		}
		chunk, err := c.dec.Decrypt(nil, nil, body[2:2+n])
		if err != nil {
			c.dead = true
			return nil, fmt.Errorf("%w: decryption: %w", ErrChannel, err)
		}
		body = body[2+n:]
		pt = append(pt, chunk[1:]...)
		if chunk[0] == 0 {
			break
		}
		if chunk[0] != 1 {
			c.dead = true
			return nil, fmt.Errorf("%w: continuation flag %d", ErrChannel, chunk[0])
		}
	}
	if len(body) != 0 {
		c.dead = true
		return nil, fmt.Errorf("%w: %d bytes after the last chunk", ErrChannel, len(body))
	}
	return pt, nil
}
