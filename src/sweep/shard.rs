//! `--shard I/N`: a deterministic partition of a plan among N workers.
//!
//! Run k of the plan (in sweep order) belongs to shard k mod N. The partition depends
//! only on the plan, never on what is done, so a requeued or restarted task always gets
//! the same runs, and round-robin keeps the shards within one run of each other in size.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole plan.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the run at `position` in the plan belongs to this shard.
    pub fn contains(&self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// The positions of this shard's runs in a plan of `runs` runs.
    pub fn positions(&self, runs: usize) -> impl Iterator<Item = usize> + '_ {
        (0..runs).filter(|&p| self.contains(p))
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || format!("expected I/N with 0 ≤ I < N (e.g. 0/4), got `{text}`");
        let (index, count) = text.split_once('/').ok_or_else(expected)?;
        let index: usize = index.trim().parse().map_err(|_| expected())?;
        let count: usize = count.trim().parse().map_err(|_| expected())?;
        if count == 0 || index >= count {
            return Err(expected());
        }
        Ok(Self { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("2/5".parse(), Ok(Shard { index: 2, count: 5 }));
        assert_eq!("0/1".parse(), Ok(Shard::ALL));
        for bad in ["5/5", "1/0", "-1/3", "1", "a/b", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!("3/3".parse::<Shard>().unwrap_err().contains("0 ≤ I < N"));
    }

    proptest! {
        #[test]
        fn shards_partition_the_plan(runs in 0usize..200, count in 1usize..20) {
            let mut owners = vec![Vec::new(); runs];
            for index in 0..count {
                let shard = Shard { index, count };
                for p in shard.positions(runs) {
                    owners[p].push(index);
                }
                // Balanced: sizes differ by at most one.
                let size = shard.positions(runs).count();
                prop_assert!(size == runs / count || size == runs / count + 1);
            }
            // Every run in exactly one shard: union is the plan, shards are disjoint.
            prop_assert!(owners.iter().all(|o| o.len() == 1));
        }

        #[test]
        fn a_shard_is_stable_when_the_plan_is_asked_again(runs in 0usize..200, count in 1usize..20, index in 0usize..20) {
            prop_assume!(index < count);
            let shard = Shard { index, count };
            let first: Vec<usize> = shard.positions(runs).collect();
            let again: Vec<usize> = shard.positions(runs).collect();
            prop_assert_eq!(&first, &again);
            // A prefix of the plan keeps its assignment when more runs follow.
            let longer: Vec<usize> = shard.positions(runs + 7).filter(|&p| p < runs).collect();
            prop_assert_eq!(first, longer);
        }
    }
}
