// Package routing picks the sender of a tenant's pool that a job goes through, and keeps the
// customer-to-number affinity that makes a customer keep seeing one number.
//
// The order of preference, applied by the worker for each channel of a job's cascade:
//
//  1. a number whose 24-hour customer-service window with this customer is open (free-form
//     messages are allowed there, and a template there does not count against the tier);
//  2. else the number that last messaged the customer (sticky, kept in Redis with an expiry:
//     see [Affinity]);
//  3. else a sender with spare capacity, chosen by rendezvous hashing weighted by the senders'
//     rates among those whose next slot is free soon ([Choose]).
//
// Rendezvous hashing (highest random weight) gives each new customer the same first choice
// in every worker without any shared state, spreads customers over the pool in proportion to
// the senders' rates, and moves only the customers of a sender that leaves the pool.
package routing

import (
	"hash/fnv"
	"math"
	"time"
)

// Candidate is one usable sender of a pool.
type Candidate struct {
	// ID is the sender's fleet id: with the customer it seeds the rendezvous hash.
	ID string
	// Weight is the sender's share (its rate in messages per second; <= 0 counts as 1).
	Weight float64
	// Free is when the sender's next send slot is free, as last seen (zero: free now).
	Free time.Time
}

// Choose returns the index of the candidate a job for customer should go through: among the
// candidates free by by (now plus the caller's horizon), the one with the highest weighted
// rendezvous score; when none is free by then, the one free soonest (ties: the score). It
// returns -1 for no candidates.
func Choose(cs []Candidate, customer string, by time.Time) int {
	best, bestFree := -1, -1
	var bestScore, freeScore float64
	for i, c := range cs {
		s := Score(customer, c.ID, c.Weight)
		if !c.Free.After(by) {
			if bestFree < 0 || s > freeScore {
				bestFree, freeScore = i, s
			}
			continue
		}
		if best < 0 || c.Free.Before(cs[best].Free) || (c.Free.Equal(cs[best].Free) && s > bestScore) {
			best, bestScore = i, s
		}
	}
	if bestFree >= 0 {
		return bestFree
	}
	return best
}

// Score is the weighted rendezvous score of sender id for customer: -weight / ln(u), where u
// in (0, 1) is a hash of the pair. For a customer, the sender with the highest score is the
// first choice, and a sender of twice the weight is the first choice of twice the customers.
func Score(customer, id string, weight float64) float64 {
	if !(weight > 0) {
		weight = 1
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(customer))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(id))
	x := mix(h.Sum64())
	u := (float64(x>>11) + 0.5) / (1 << 53) // (0, 1), never 0 or 1
	return -weight / math.Log(u)
}

// mix is splitmix64's finaliser: FNV's low bits are poorly mixed for short keys.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
