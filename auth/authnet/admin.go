package authnet

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/wire"
)

// The operator's access to a running CA. The CA keeps an admin key pair
// in its data directory (AdminKeyFile, mode 0600, created on first start)
// and accepts administration (auth.Admin: trace, revoke) over its own TCP
// listener, in a Noise IK session, from that key only. So the running CA
// stays the only process that holds its secrets and writes its state,
// whoever can read the data directory can administer (they could read
// ca.key anyway), and an operator elsewhere can be given admin.key alone,
// which traces and revokes but cannot sign, open tags offline, or enrol.

// loadOrCreateAdminKey returns the admin key pair, creating it on first use.
func loadOrCreateAdminKey(store *Store) (noise.DHKey, error) {
	if store.Exists(AdminKeyFile) {
		return ReadAdminKey(store.Path(AdminKeyFile))
	}
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return noise.DHKey{}, err
	}
	if err := store.Write(AdminKeyFile, []byte(hex.EncodeToString(k.Bytes())+"\n"), 0o600); err != nil {
		return noise.DHKey{}, err
	}
	return noise.DHKey{Private: k.Bytes(), Public: k.PublicKey().Bytes()}, nil
}

// ReadAdminKey reads an admin key file: an X25519 private key in hex.
func ReadAdminKey(path string) (noise.DHKey, error) {
	b, err := readHexFile(path)
	if err != nil {
		return noise.DHKey{}, err
	}
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return noise.DHKey{}, fmt.Errorf("%s: want an X25519 private key (32 bytes of hex): %w", path, err)
	}
	return noise.DHKey{Private: k.Bytes(), Public: k.PublicKey().Bytes()}, nil
}

// ErrCADown is returned when no CA listens at the address.
var ErrCADown = errors.New("no CA is listening there (is gridveil serve --role ca running?)")

// RunAdmin carries one administration exchange with the CA at addr and
// returns the CA's answer.
func RunAdmin(ctx context.Context, addr string, a *auth.Admin, first []byte) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "", fmt.Errorf("the CA at %s: %w", addr, ErrCADown)
		}
		return "", fmt.Errorf("the CA at %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := wire.WriteFrame(c, first); err != nil {
		return "", err
	}
	for !a.Done() {
		f, err := wire.ReadFrame(c, maxLinkFrame)
		if err != nil {
			return "", fmt.Errorf("the CA at %s closed the connection: %w", addr, err)
		}
		next, err := a.Receive(f)
		if err != nil {
			return "", err
		}
		if next != nil {
			if err := wire.WriteFrame(c, next); err != nil {
				return "", err
			}
		}
	}
	return a.Result(), nil
}
