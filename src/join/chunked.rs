//! Containers that grow in fixed chunks instead of doubling. The join holds millions of
//! small records for days; a doubling vector would keep up to twice their size allocated
//! (it measured 250 bytes per open ticket instead of ~150).

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::collections::VecDeque;
use std::hash::BuildHasher;

const CHUNK: usize = 4096;

/// A FIFO addressed by position from the front.
pub struct Ring<T> {
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring {
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Ring<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes allocated for the records themselves (whole chunks), not what they point to.
    pub fn allocated_bytes(&self) -> usize {
        let slots: usize = self.chunks.iter().map(VecDeque::capacity).sum();
        slots
            .saturating_add(self.chunks.capacity())
            .saturating_mul(std::mem::size_of::<T>())
    }

    pub fn push_back(&mut self, t: T) {
        match self.chunks.back_mut() {
            Some(c) if c.len() < CHUNK => c.push_back(t),
            _ => {
                let mut c = VecDeque::with_capacity(CHUNK);
                c.push_back(t);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let first = self.chunks.front_mut()?;
        let t = first.pop_front()?;
        if first.is_empty() {
            self.chunks.pop_front();
        }
        self.len -= 1;
        Some(t)
    }

    pub fn front(&self) -> Option<&T> {
        self.chunks.front()?.front()
    }

    /// Every chunk but the first and last is full, so a position maps to one chunk.
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        let first = self.chunks.front()?.len();
        if i < first {
            return Some((0, i));
        }
        let j = i - first;
        Some((1 + j / CHUNK, j % CHUNK))
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        let (c, o) = self.locate(i)?;
        self.chunks.get(c)?.get(o)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let (c, o) = self.locate(i)?;
        self.chunks.get_mut(c)?.get_mut(o)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

/// Slots with a free list; ids stay put while live.
pub struct Slab<T> {
    chunks: Vec<Vec<Option<T>>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Bytes allocated for the slots (whole chunks) and the free list.
    pub fn allocated_bytes(&self) -> usize {
        let slots: usize = self.chunks.iter().map(Vec::capacity).sum();
        slots
            .saturating_mul(std::mem::size_of::<Option<T>>())
            .saturating_add(self.free.capacity().saturating_mul(4))
    }

    pub fn insert(&mut self, t: T) -> u32 {
        if let Some(i) = self.free.pop() {
            if let Some(slot) = self.slot_mut(i) {
                *slot = Some(t);
                return i;
            }
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let n = self.chunks.len() - 1;
        let last = &mut self.chunks[n];
        last.push(Some(t));
        (n * CHUNK + last.len() - 1) as u32
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Option<T>> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    pub fn get(&self, i: u32) -> Option<&T> {
        let i = i as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)?.as_ref()
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.slot_mut(i)?.as_mut()
    }

    pub fn remove(&mut self, i: u32) -> Option<T> {
        let t = self.slot_mut(i)?.take();
        if t.is_some() {
            self.free.push(i);
        }
        t
    }
}

/// Something found by a string id.
pub trait Named {
    fn name(&self) -> &str;
}

/// A slab indexed by each record's id.
pub struct ById<T> {
    slab: Slab<T>,
    index: HashTable<u32>,
}

impl<T> Default for ById<T> {
    fn default() -> Self {
        ById {
            slab: Slab::default(),
            index: HashTable::new(),
        }
    }
}

fn hash_str(s: &str) -> u64 {
    FxBuildHasher.hash_one(s)
}

impl<T: Named> ById<T> {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Bytes allocated for the records and the index (a bucket holds a u32 and a control
    /// byte; hashbrown keeps at most 7/8 of its buckets full).
    pub fn allocated_bytes(&self) -> usize {
        let buckets = self.index.capacity().saturating_mul(8) / 7;
        self.slab
            .allocated_bytes()
            .saturating_add(buckets.saturating_mul(5))
    }

    pub fn find(&self, name: &str) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(hash_str(name), |&i| {
                slab.get(i).is_some_and(|t| t.name() == name)
            })
            .copied()
    }

    /// The id of the record named `name`, inserting `make()` when there is none.
    pub fn find_or_insert(&mut self, name: &str, make: impl FnOnce() -> T) -> u32 {
        if let Some(i) = self.find(name) {
            return i;
        }
        let i = self.slab.insert(make());
        let slab = &self.slab;
        self.index.insert_unique(hash_str(name), i, |&x| {
            slab.get(x).map_or(0, |t| hash_str(t.name()))
        });
        i
    }

    pub fn get(&self, i: u32) -> Option<&T> {
        self.slab.get(i)
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.slab.get_mut(i)
    }

    pub fn remove(&mut self, i: u32) -> Option<T> {
        let t = self.slab.remove(i)?;
        if let Ok(e) = self.index.find_entry(hash_str(t.name()), |&x| x == i) {
            e.remove();
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_positions_survive_pops_across_chunks() {
        let mut r = Ring::default();
        for i in 0..3 * CHUNK + 5 {
            r.push_back(i);
        }
        for i in 0..CHUNK + 7 {
            assert_eq!(r.pop_front(), Some(i));
        }
        assert_eq!(r.len(), 2 * CHUNK - 2);
        for k in [0, 1, CHUNK - 8, CHUNK - 7, 2 * CHUNK - 3] {
            assert_eq!(r.get(k), Some(&(CHUNK + 7 + k)));
        }
        assert_eq!(r.get(2 * CHUNK - 2), None);
        assert_eq!(r.iter().count(), r.len());
    }

    #[test]
    fn slab_reuses_freed_ids() {
        let mut s = Slab::default();
        let ids: Vec<u32> = (0..CHUNK as u32 + 3).map(|i| s.insert(i)).collect();
        assert_eq!(s.get(ids[CHUNK + 1]), Some(&(CHUNK as u32 + 1)));
        assert_eq!(s.remove(ids[5]), Some(5));
        assert_eq!(s.get(ids[5]), None);
        assert_eq!(s.insert(99), ids[5]);
    }
}
