//go:build unix

package importer

import "syscall"

// oNoFollow refuses a symbolic link as the reject file (see rejectFlags).
const oNoFollow = syscall.O_NOFOLLOW
