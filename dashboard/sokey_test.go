package dashboard

import (
	"crypto/ed25519"
	"crypto/rand"
)

// testSOPub and testSOKey are the SO's signing key pair for the tests
// that run a real SO and EV host.
var testSOPub, testSOKey = func() (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return pub, key
}()
