package web

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// prehash lets passwords of any length use bcrypt, which reads only 72
// bytes: bcrypt sees base64(SHA-256(password)), 44 bytes.
func prehash(password string) []byte {
	sum := sha256.Sum256([]byte(password))
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sum)))
	base64.StdEncoding.Encode(out, sum[:])
	return out
}

func hashPassword(password string, cost int) ([]byte, error) {
	h, err := bcrypt.GenerateFromPassword(prehash(password), cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// passwordMatches compares in constant time (bcrypt's own comparison).
func passwordMatches(hash []byte, password string) (bool, error) {
	err := bcrypt.CompareHashAndPassword(hash, prehash(password))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("compare password: %w", err)
	}
}
