//! Shard map: which open shard a partition key goes to. Kinesis hashes the
//! partition key with MD5 and reads the digest as a 128-bit big-endian
//! integer; the shard whose `[StartingHashKey, EndingHashKey]` holds it gets
//! the record.

use md5::{Digest, Md5};

/// One open shard's hash-key range (inclusive at both ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRange {
    pub shard_id: String,
    pub start: u128,
    pub end: u128,
}

/// The open shards of a stream, sorted by starting hash key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<ShardRange>,
}

/// MD5 of the partition key as a 128-bit big-endian integer.
pub fn hash_key(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    u128::from_be_bytes(bytes)
}

impl ShardMap {
    pub fn new(mut shards: Vec<ShardRange>) -> Self {
        shards.sort_by_key(|s| s.start);
        Self { shards }
    }

    pub fn shards(&self) -> &[ShardRange] {
        &self.shards
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Index (into [`shards`](Self::shards)) of the shard for this hash key.
    pub fn index_for_hash(&self, hash: u128) -> Option<usize> {
        let i = self.shards.partition_point(|s| s.start <= hash);
        let i = i.checked_sub(1)?;
        (hash <= self.shards[i].end).then_some(i)
    }

    /// The shard a partition key goes to.
    pub fn shard_for(&self, partition_key: &str) -> Option<&ShardRange> {
        self.index_for_hash(hash_key(partition_key))
            .map(|i| &self.shards[i])
    }
}

/// Parse a decimal hash key as Kinesis returns it.
pub fn parse_hash_key(s: &str) -> Result<u128, String> {
    s.parse::<u128>()
        .map_err(|e| format!("hash key {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_big_endian() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }

    #[test]
    fn routing() {
        let half = u128::MAX / 2;
        let map = ShardMap::new(vec![
            ShardRange {
                shard_id: "s1".into(),
                start: half + 1,
                end: u128::MAX,
            },
            ShardRange {
                shard_id: "s0".into(),
                start: 0,
                end: half,
            },
        ]);
        assert_eq!(map.index_for_hash(0), Some(0));
        assert_eq!(map.index_for_hash(half), Some(0));
        assert_eq!(map.index_for_hash(half + 1), Some(1));
        assert_eq!(map.index_for_hash(u128::MAX), Some(1));
        assert_eq!(map.shard_for("a").unwrap().shard_id, "s0"); // 0x0c… < half
        assert_eq!(map.shard_for("").unwrap().shard_id, "s1"); // 0xd4… > half
        let gap = ShardMap::new(vec![ShardRange {
            shard_id: "x".into(),
            start: 10,
            end: 20,
        }]);
        assert_eq!(gap.index_for_hash(5), None);
        assert_eq!(gap.index_for_hash(21), None);
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Ok(u128::MAX)
        );
        assert!(parse_hash_key("-1").is_err());
    }
}
