package controller

import "testing"

// TestArmUseFollowsRecentReports: the top arm is the most counted one, and
// after the counts halve often enough an arm used now overtakes one used
// long ago, although the old one has more reports in all.
func TestArmUseFollowsRecentReports(t *testing.T) {
	var u armUse
	if _, _, ok := u.top(); ok {
		t.Fatal("top arm before any report")
	}
	batch := func(arm, n int, version uint64) []item {
		out := make([]item, n)
		for i := range out {
			out[i] = item{arm: arm, seq: uint64(i + 1)}
			out[i].report.PolicyVersion = version
		}
		return out
	}
	u.add(batch(3, 600, 1))
	u.add(batch(5, 300, 2))
	// A duplicate (no sequence number) is not counted.
	u.add([]item{{arm: 5}})
	arm, share, ok := u.top()
	if !ok || arm != 3 || share != 600.0/900 || u.version != 2 {
		t.Fatalf("top %d share %v version %d, want 3, 2/3, 2", arm, share, u.version)
	}
	// 3000 reports of arm 5 after 600 of arm 3: arm 3's count has halved
	// below arm 5's.
	u.add(batch(5, 3000, 7))
	arm, share, _ = u.top()
	if arm != 5 || share < 0.9 || u.total >= armUseHalving || u.version != 7 {
		t.Fatalf("top %d share %v total %v version %d, want arm 5 with most of the share", arm, share, u.total, u.version)
	}
}
