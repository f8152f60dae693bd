package charging

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// The SO signs what it tells the vehicles. A broadcast steers every
// vehicle of a bus (its aggregate and price decide each step), and a drop
// notice ends a vehicle's coordination, so a party that can publish on
// the bus but is not the SO must not be able to forge either: a forged
// step could make a bus's vehicles charge into the evening peak, a forged
// notice could freeze them. Reports need no such seal against the SO,
// which refuses non-members, but see docs/PLATFORM.md for what binding
// senders to C6 sessions still has to add.
//
// A sealed message is the message's encoding followed by an Ed25519
// signature (RFC 8032, crypto/ed25519) over the domain label
// "gridveil coordination SO v1", a zero byte and the encoding. The label
// keeps the signature from being valid for any other protocol that might
// use the same key.

// sealLabel is the signature's domain separation.
const sealLabel = "gridveil coordination SO v1\x00"

// ErrForged is wrapped by the errors of OpenBroadcast and OpenDropped for
// a message whose signature is missing or not the SO's.
var ErrForged = errors.New("message not signed by the system operator")

func signed(body []byte) []byte { return append([]byte(sealLabel), body...) }

func seal(body []byte, key ed25519.PrivateKey) []byte {
	return append(body, ed25519.Sign(key, signed(body))...)
}

func open(data []byte, so ed25519.PublicKey) ([]byte, error) {
	if len(data) > MaxMessageSize+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %d bytes exceed the %d-byte limit", ErrBadMessage, len(data), MaxMessageSize+ed25519.SignatureSize)
	}
	if len(data) < ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %d bytes are too few for a signed message", ErrForged, len(data))
	}
	body, sig := data[:len(data)-ed25519.SignatureSize], data[len(data)-ed25519.SignatureSize:]
	if len(so) != ed25519.PublicKeySize || !ed25519.Verify(so, signed(body), sig) {
		return nil, ErrForged
	}
	return body, nil
}

// SealBroadcast encodes and signs a broadcast with the SO's key.
func SealBroadcast(m *Broadcast, key ed25519.PrivateKey) ([]byte, error) {
	body, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return seal(body, key), nil
}

// OpenBroadcast checks the SO's signature, then decodes the broadcast.
func OpenBroadcast(data []byte, so ed25519.PublicKey) (Broadcast, error) {
	var m Broadcast
	body, err := open(data, so)
	if err != nil {
		return m, err
	}
	err = m.UnmarshalBinary(body)
	return m, err
}

// SealDropped encodes and signs a drop notice with the SO's key.
func SealDropped(m *Dropped, key ed25519.PrivateKey) ([]byte, error) {
	body, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return seal(body, key), nil
}

// OpenDropped checks the SO's signature, then decodes the notice.
func OpenDropped(data []byte, so ed25519.PublicKey) (Dropped, error) {
	var m Dropped
	body, err := open(data, so)
	if err != nil {
		return m, err
	}
	err = m.UnmarshalBinary(body)
	return m, err
}
