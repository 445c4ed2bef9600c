//! Random number generators.
//!
//! [`RandomState`] is a bit-exact port of NumPy's legacy `numpy.random.RandomState` (MT19937),
//! so that a seed gives exactly the reference's validation and forget sets. [`SmallRng`]
//! (xoshiro256++) is a fast, seedable generator for everything that does not need to match
//! NumPy: batch order and augmentation.

/// MT19937 state length (624 words).
const N: usize = 624;
/// MT19937 shift offset.
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// NumPy's legacy `RandomState`: MT19937 with NumPy's integer seeding and legacy algorithms.
#[derive(Clone)]
pub struct RandomState {
    mt: [u32; N],
    pos: usize,
}

impl std::fmt::Debug for RandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomState")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl RandomState {
    /// `numpy.random.RandomState(seed)` for an integer seed.
    ///
    /// NumPy's legacy seeding of a plain integer is MT19937's `init_genrand(seed)` (not
    /// `init_by_array`); the test vectors confirm it.
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        // `pos = N` forces a full state regeneration before the first output, as NumPy does.
        RandomState { mt, pos: N }
    }

    /// Regenerates all 624 state words (the MT19937 "twist").
    fn generate(&mut self) {
        let mag = |y: u32| if y & 1 == 1 { MATRIX_A } else { 0 };
        for i in 0..N - M {
            let y = (self.mt[i] & UPPER_MASK) | (self.mt[i + 1] & LOWER_MASK);
            self.mt[i] = self.mt[i + M] ^ (y >> 1) ^ mag(y);
        }
        for i in N - M..N - 1 {
            let y = (self.mt[i] & UPPER_MASK) | (self.mt[i + 1] & LOWER_MASK);
            self.mt[i] = self.mt[i + M - N] ^ (y >> 1) ^ mag(y);
        }
        let y = (self.mt[N - 1] & UPPER_MASK) | (self.mt[0] & LOWER_MASK);
        self.mt[N - 1] = self.mt[M - 1] ^ (y >> 1) ^ mag(y);
        self.pos = 0;
    }

    /// The next raw 32-bit output (`randint(0, 2**32, dtype=uint32)` / `tomaxint` building block).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == N {
            self.generate();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// 64 bits from two draws, high word first, as NumPy's legacy MT19937 `next_uint64`.
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        let lo = self.next_u32() as u64;
        (hi << 32) | lo
    }

    /// `random_sample()`: a 53-bit double in [0, 1) from two draws (27 + 26 bits).
    pub fn random_sample(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// A uniform integer in `0..=max` by bit-mask rejection (NumPy's `random_interval`,
    /// used by legacy `shuffle`/`permutation` and, with an offset, by legacy `randint`).
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        mask |= mask >> 32;
        if max <= u32::MAX as u64 {
            // One 32-bit draw per try; NumPy only falls back to 64-bit draws above 2^32 − 1.
            loop {
                let v = (self.next_u32() as u64) & mask;
                if v <= max {
                    return v;
                }
            }
        } else {
            loop {
                let v = self.next_u64() & mask;
                if v <= max {
                    return v;
                }
            }
        }
    }

    /// Legacy `randint(low, high)` (default int64 dtype): uniform in `low..high`.
    ///
    /// Panics when `low >= high` (a programming error, as NumPy raises).
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        assert!(low < high, "randint: low ({low}) must be < high ({high})");
        let range = (high as i128 - 1 - low as i128) as u64;
        if range == u32::MAX as u64 {
            // NumPy takes a raw 32-bit draw for this exact range instead of masking.
            return low.wrapping_add(self.next_u32() as i64);
        }
        low.wrapping_add(self.interval(range) as i64)
    }

    /// Legacy in-place `shuffle` of a 1-D sequence: Fisher–Yates from the last element down.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.interval(i as u64) as usize;
            xs.swap(i, j);
        }
    }

    /// Legacy `permutation(n)`: a shuffled `arange(n)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        self.shuffle(&mut v);
        v
    }

    /// Legacy `choice(pool, k, replace=False)`: `pool[permutation(len(pool))[:k]]`.
    ///
    /// Panics when `k > pool.len()` (NumPy raises `ValueError`); callers validate first.
    pub fn choice_without_replacement(&mut self, pool: &[usize], k: usize) -> Vec<usize> {
        assert!(
            k <= pool.len(),
            "cannot take a sample of {k} from a pool of {} without replacement",
            pool.len()
        );
        let perm = self.permutation(pool.len());
        perm[..k].iter().map(|&p| pool[p]).collect()
    }
}

/// A small, fast, seedable generator (xoshiro256++) for batch order and augmentation.
#[derive(Debug, Clone)]
pub struct SmallRng {
    s: [u64; 4],
}

impl SmallRng {
    /// Seeds the four state words from `seed` with SplitMix64, as the xoshiro authors advise.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        SmallRng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (unbiased, Lemire's multiply-and-reject); `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SmallRng::below(0)");
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// True with probability 1/2.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Uniform in-place Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }
}
