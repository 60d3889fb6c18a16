package controller

// armUseHalving is the count at which armUse halves its counts.
const armUseHalving = 1024

// armUse counts the arms (indexes into the key's arms) and the policy
// version of an executor's applied reports. The counts halve whenever
// they reach armUseHalving, so the top arm is that of recent reports.
type armUse struct {
	counts  map[int]float64
	total   float64
	version uint64
}

// add counts the committed reports of a batch (those the committer gave a
// sequence number; duplicates have none).
func (u *armUse) add(items []item) {
	for i := range items {
		it := &items[i]
		if it.seq == 0 {
			continue
		}
		if u.counts == nil {
			u.counts = map[int]float64{}
		}
		u.counts[it.arm]++
		u.total++
		u.version = it.report.PolicyVersion
		if u.total >= armUseHalving {
			u.total = 0
			for a, n := range u.counts {
				if n /= 2; n < 0.5 {
					delete(u.counts, a)
					continue
				}
				u.counts[a] = n
				u.total += n
			}
		}
	}
}

// top returns the most used arm and its share; ok is false before any
// report. Ties go to the lower index.
func (u *armUse) top() (arm int, share float64, ok bool) {
	best := -1.0
	for a, n := range u.counts {
		if n > best || n == best && a < arm {
			arm, best = a, n
		}
	}
	if best <= 0 {
		return 0, 0, false
	}
	return arm, best / u.total, true
}

// used notes the arms and policy version of a committed batch.
func (x *execState) used(items []item) {
	x.mu.Lock()
	x.use.add(items)
	x.mu.Unlock()
}
