package aggregate

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/gridveil/gridveil/auth/pseudonym"
)

// ErrMaskKey is returned when a vehicle rejects the list of mask public
// keys the LAG relayed for its bus: an entry is not signed under a
// CA-certified pseudonym for this session and bus, a certificate appears
// twice, or the vehicle's own entry was altered.
var ErrMaskKey = errors.New("masking: relayed mask key rejected")

// maskCA is the C6 central authority as authenticated masking uses it: it
// certifies each vehicle's pseudonym key (auth/pseudonym), under which the
// vehicle signs its mask public key. The simulation runs one; a deployment
// uses the CA of `gridveil serve --role ca`.
type maskCA struct {
	pub   ed25519.PublicKey
	priv  ed25519.PrivateKey
	trace hpke.PublicKey
	now   time.Time // the session's time, for certificate windows
}

func newMaskCA() (*maskCA, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("masking: CA key: %w", err)
	}
	tk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("masking: CA tracing key: %w", err)
	}
	trace, err := hpke.NewDHKEMPublicKey(tk.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("masking: CA tracing key: %w", err)
	}
	return &maskCA{pub: pub, priv: priv, trace: trace, now: time.Now()}, nil
}

// maskAnnounce is one vehicle's entry in its bus's key list, as the LAG
// relays it: a pseudonym certificate, the X25519 mask public key, and the
// pseudonym's signature binding that key to the session and bus.
type maskAnnounce struct {
	cert *pseudonym.Cert
	pk   []byte
	sig  []byte
}

// maskKeyMessage is what a vehicle signs with its pseudonym key: the mask
// key, bound to the coordination session and the bus so that the LAG can
// neither move it to another bus nor replay it in another session.
func maskKeyMessage(session [16]byte, bus string, pk []byte) []byte {
	m := append([]byte("gridveil/mask-key/v1\x00"), session[:]...)
	m = binary.BigEndian.AppendUint16(m, uint16(len(bus)))
	m = append(m, bus...)
	return append(m, pk...)
}

// announce makes a vehicle's entry: a fresh pseudonym key certified by the
// CA for the vehicle id, and its signature over the mask key.
func (ca *maskCA) announce(id string, session [16]byte, bus string, pk []byte) (maskAnnounce, error) {
	pseudoPub, pseudoPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return maskAnnounce{}, fmt.Errorf("masking: pseudonym key: %w", err)
	}
	cert, err := pseudonym.Issue(ca.priv, ca.trace, id, "gridveil-masking", pseudoPub, ca.now.Add(-time.Hour), ca.now.Add(24*time.Hour))
	if err != nil {
		return maskAnnounce{}, fmt.Errorf("masking: certifying vehicle %s: %w", id, err)
	}
	return maskAnnounce{cert: cert, pk: pk, sig: ed25519.Sign(pseudoPriv, maskKeyMessage(session, bus, pk))}, nil
}

// checkAnnouncements is vehicle self's check of the list the LAG relayed
// for its bus, before it agrees keys with anyone: its own entry is there as
// it sent it; every other entry carries a certificate the CA signed, valid
// now, not seen twice, and a signature under that certificate's key over
// the mask key for this session and bus. The signatures are checked
// together (pseudonym.VerifyBatch) and one by one only to name a culprit.
//
// What it stops: a LAG that substitutes a mask key of its own, moves a key
// from another bus or session, or doubles a vehicle's entry; it would then
// hold a pairwise key with an honest vehicle. What it does not: a LAG
// working with vehicles that hold real pseudonyms (as many as a bus has
// other vehicles, it learns what all-but-one collusion learns anyway), and
// a LAG that relays different lists to different vehicles, which the
// transcript hash in the pair keys turns into masks that do not cancel.
func (ca *maskCA) checkAnnouncements(session [16]byte, bus string, list []maskAnnounce, self int, own maskAnnounce) error {
	if self >= len(list) || list[self].cert == nil || !bytes.Equal(list[self].cert.Marshal(), own.cert.Marshal()) ||
		!bytes.Equal(list[self].pk, own.pk) || !bytes.Equal(list[self].sig, own.sig) {
		return fmt.Errorf("%w: at bus %s, vehicle %d's own entry is missing or altered", ErrMaskKey, bus, self)
	}
	entries := make([]pseudonym.Entry, 0, 2*len(list))
	who := make([]int, 0, 2*len(list))
	seen := make(map[[pseudonym.SerialSize]byte]bool, len(list))
	for j, a := range list {
		if a.cert == nil || len(a.pk) != 32 || len(a.sig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: at bus %s, entry %d is malformed", ErrMaskKey, bus, j)
		}
		if seen[a.cert.Serial] {
			return fmt.Errorf("%w: at bus %s, entry %d repeats a certificate", ErrMaskKey, bus, j)
		}
		seen[a.cert.Serial] = true
		if j == self {
			continue
		}
		if err := a.cert.CheckValidity(ca.now); err != nil {
			return fmt.Errorf("%w: at bus %s, entry %d: %w", ErrMaskKey, bus, j, err)
		}
		entries = append(entries,
			pseudonym.Entry{PublicKey: ca.pub, Message: a.cert.SignedMessage(), Signature: a.cert.Sig[:]},
			pseudonym.Entry{PublicKey: a.cert.Key[:], Message: maskKeyMessage(session, bus, a.pk), Signature: a.sig})
		who = append(who, j, j)
	}
	if pseudonym.VerifyBatch(entries) {
		return nil
	}
	for k, ok := range pseudonym.VerifyEach(entries) {
		if !ok {
			what := "certificate is not the CA's"
			if k%2 == 1 {
				what = "mask key is not signed by its certificate's pseudonym for this session and bus"
			}
			return fmt.Errorf("%w: at bus %s, entry %d: %s", ErrMaskKey, bus, who[k], what)
		}
	}
	return fmt.Errorf("%w: at bus %s: the batch of signatures fails", ErrMaskKey, bus)
}

// transcript hashes the relayed mask keys in order, with their
// certificates and signatures when authenticated. Every pair key binds it,
// so that vehicles shown different lists derive different keys.
func transcript(pks [][]byte, list []maskAnnounce) [32]byte {
	h := sha256.New()
	for _, pk := range pks {
		h.Write(pk)
	}
	for _, a := range list {
		h.Write(a.cert.Marshal())
		h.Write(a.sig)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
