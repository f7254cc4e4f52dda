package ssh

import "strings"

// Quote quotes s for a POSIX shell so that it is read back as exactly one word
// equal to s. Strings made only of [A-Za-z0-9._+:@%/=,-] are returned
// unchanged, the empty string becomes a pair of single quotes, and anything
// else is wrapped in single quotes, each single quote inside written as:
//
//	'\''
//
// Shells cannot pass NUL bytes, so s must not contain one.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isSafeWord(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isSafeWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("._+:@%/=,-", c) >= 0:
		default:
			return false
		}
	}
	return true
}
