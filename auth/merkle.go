package auth

import "crypto/sha256"

// A Merkle tree over session bindings lets a LAG confirm a whole batch of
// gathered vehicles with one signature (seed 002's "signature for the
// temporarily gathered BVs", after Guo et al.): each vehicle gets the
// signed root and the path from its own leaf. Hashing follows RFC 6962:
// leaves H(0x00 | binding), nodes H(0x01 | left | right), an odd node moves
// up a level unchanged.

func leafHash(b [32]byte) [32]byte {
	return sha256.Sum256(append([]byte{0}, b[:]...))
}

func nodeHash(l, r [32]byte) [32]byte {
	buf := make([]byte, 0, 65)
	buf = append(append(append(buf, 1), l[:]...), r[:]...)
	return sha256.Sum256(buf)
}

// merkleTree returns the root and, for each leaf, its path of siblings.
func merkleTree(leaves [][32]byte) (root [32]byte, paths [][][32]byte) {
	level := make([][32]byte, len(leaves))
	pos := make([]int, len(leaves))
	for i, l := range leaves {
		level[i] = leafHash(l)
		pos[i] = i
	}
	paths = make([][][32]byte, len(leaves))
	for len(level) > 1 {
		next := make([][32]byte, 0, (len(level)+1)/2)
		for i := 0; i < len(level); i += 2 {
			if i+1 < len(level) {
				next = append(next, nodeHash(level[i], level[i+1]))
			} else {
				next = append(next, level[i])
			}
		}
		for k, p := range pos {
			sib := p ^ 1
			if sib < len(level) {
				paths[k] = append(paths[k], level[sib])
			}
			pos[k] = p / 2
		}
		level = next
	}
	if len(level) == 1 {
		root = level[0]
	}
	return root, paths
}

// merkleVerify checks that leaf is at index of a tree of count leaves with
// the given root.
func merkleVerify(root, leaf [32]byte, index, count uint32, path [][32]byte) bool {
	if index >= count {
		return false
	}
	h := leafHash(leaf)
	p, n := index, count
	for n > 1 {
		if p^1 < n {
			if len(path) == 0 {
				return false
			}
			if p&1 == 0 {
				h = nodeHash(h, path[0])
			} else {
				h = nodeHash(path[0], h)
			}
			path = path[1:]
		}
		p, n = p/2, (n+1)/2
	}
	return len(path) == 0 && h == root
}
