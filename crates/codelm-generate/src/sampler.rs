//! Turning one step's logits into a token, and reporting log-probabilities.
//!
//! [`Sampler`] runs llama.cpp's default chain: repetition penalty → top-k →
//! top-p → min-p → temperature → softmax → draw. Top-p and min-p measure
//! probabilities at temperature 1; temperature only reshapes what survived.
//! A temperature of zero (or below) means greedy decoding: the highest logit
//! after the repetition penalty wins, ties going to the lowest token id.
//!
//! The design decision a newcomer may question: the sampler never sorts the
//! whole vocabulary (151,936 entries for Qwen2.5). Top-k uses a partial
//! selection (`select_nth_unstable_by`) and sorts only the `k` survivors;
//! top-p alone sorts a head of 128 candidates and grows it fourfold only
//! while the head holds less than `top_p` of the probability mass. The random
//! generator is a hand-written xoshiro256** seeded through splitmix64, so the
//! same seed and the same logits give the same tokens on every platform,
//! without a `rand` dependency whose stream could change between versions.
//!
//! ```
//! use codelm_generate::{Sampler, SamplingParams};
//!
//! let mut logits = vec![0.5, 2.0, 1.0];
//! let mut greedy = Sampler::new(SamplingParams::default());
//! assert_eq!(greedy.sample(&mut logits, &[]).unwrap(), 1);
//!
//! // A strong repetition penalty on token 1 hands the win to token 2.
//! let mut logits = vec![0.5, 2.0, 1.5];
//! let params = SamplingParams { repetition_penalty: 2.0, ..SamplingParams::default() };
//! assert_eq!(Sampler::new(params).sample(&mut logits, &[1]).unwrap(), 2);
//! ```

use std::cmp::Ordering;

use crate::error::{Error, Result};

/// Knobs of the sampling chain. Every "off" value leaves that stage out.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0.0` (or below, or NaN) means greedy argmax.
    pub temperature: f32,
    /// Keep only the `top_k` highest logits; `0` is off.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`;
    /// `1.0` (or above, or NaN) is off, `0.0` or below keeps one token.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one;
    /// `0.0` (or below, or NaN) is off.
    pub min_p: f32,
    /// CTRL-style penalty for tokens in the recent window: a positive logit
    /// is divided by it, a negative one multiplied. `1.0` is off, and so is a
    /// value that is not positive.
    pub repetition_penalty: f32,
    /// How many of the most recent tokens the penalty looks at; `0` is off.
    pub repeat_last_n: usize,
    /// Seed of the sampler's random generator.
    pub seed: u64,
}

impl Default for SamplingParams {
    /// Greedy decoding with every truncation off and a 64-token penalty
    /// window (inactive until `repetition_penalty` moves off `1.0`).
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

/// A stateful sampler: the parameters, a seeded random generator, and
/// scratch buffers reused between steps.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Xoshiro256StarStar,
    candidates: Vec<Candidate>,
    weights: Vec<f64>,
    /// Untruncated sampling: every token's weight, and their sums per block.
    probs: Vec<f32>,
    block_sums: Vec<f64>,
    penalised: Vec<u32>,
}

impl Sampler {
    /// Builds a sampler whose generator is seeded from `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = Xoshiro256StarStar::seed_from_u64(params.seed);
        Self {
            params,
            rng,
            candidates: Vec::new(),
            weights: Vec::new(),
            probs: Vec::new(),
            block_sums: Vec::new(),
            penalised: Vec::new(),
        }
    }

    /// The parameters this sampler was built with.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from one step's `logits` (one per vocabulary
    /// entry), penalising tokens found in the last `repeat_last_n` of
    /// `recent_tokens` (as in llama.cpp, the prompt and the tokens generated
    /// so far).
    ///
    /// The repetition penalty is applied to `logits` in place, so
    /// log-probabilities computed afterwards describe the penalised
    /// distribution; nothing else is written back. NaN and infinite logits
    /// never win. Token ids in `recent_tokens` beyond the vocabulary are
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`Error::NoFiniteLogits`] when `logits` holds no finite value.
    pub fn sample(&mut self, logits: &mut [f32], recent_tokens: &[u32]) -> Result<u32> {
        let n_vocab = logits.len();
        self.apply_repetition_penalty(logits, recent_tokens);
        let temperature = self.params.temperature;
        if temperature.is_nan() || temperature <= 0.0 {
            return argmax(logits).ok_or(Error::NoFiniteLogits { n_vocab });
        }
        let p = &self.params;
        if p.top_k == 0 && p.top_p >= 1.0 && p.min_p <= 0.0 {
            return self.sample_untruncated(logits, temperature);
        }

        self.candidates.clear();
        self.candidates.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, logit)| logit.is_finite())
                .map(|(idx, &logit)| Candidate {
                    id: idx as u32,
                    logit,
                }),
        );
        if self.candidates.is_empty() {
            return Err(Error::NoFiniteLogits { n_vocab });
        }

        let top_k = self.params.top_k;
        let is_sorted = top_k > 0 && top_k < self.candidates.len();
        if is_sorted {
            self.candidates
                .select_nth_unstable_by(top_k - 1, by_logit_desc);
            self.candidates.truncate(top_k);
            self.candidates.sort_unstable_by(by_logit_desc);
        }
        let top_p = self.params.top_p;
        if top_p < 1.0 {
            truncate_top_p(&mut self.candidates, top_p, is_sorted);
        }
        let min_p = self.params.min_p;
        if min_p > 0.0 {
            // p_i >= min_p * p_max  <=>  logit_i >= logit_max + ln(min_p).
            let threshold = max_logit(&self.candidates) + min_p.ln();
            self.candidates.retain(|c| c.logit >= threshold);
        }

        let max = max_logit(&self.candidates);
        let inverse_temperature = 1.0 / f64::from(temperature);
        self.weights.clear();
        self.weights.extend(
            self.candidates
                .iter()
                .map(|c| (f64::from(c.logit - max) * inverse_temperature).exp()),
        );
        let total: f64 = self.weights.iter().sum();
        let target = self.rng.next_f64() * total;
        let mut cumulative = 0.0;
        for (candidate, weight) in self.candidates.iter().zip(&self.weights) {
            cumulative += weight;
            if target < cumulative {
                return Ok(candidate.id);
            }
        }
        // Rounding can leave `target` a hair above the last partial sum.
        Ok(self.candidates[self.candidates.len() - 1].id)
    }

    /// Temperature sampling over every finite logit: the weights
    /// e^((logit − max) / T) sixteen at a time, and the drawn token found
    /// through per-block sums rather than one running sum over the whole
    /// vocabulary (the truncating path keeps its candidate list).
    fn sample_untruncated(&mut self, logits: &[f32], temperature: f32) -> Result<u32> {
        const BLOCK: usize = 1024;
        let max = logits
            .iter()
            .copied()
            .filter(|l| l.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return Err(Error::NoFiniteLogits {
                n_vocab: logits.len(),
            });
        }
        let inverse_temperature = 1.0 / temperature;
        self.probs.clear();
        self.probs.extend(logits.iter().map(|&l| {
            if l.is_finite() {
                (l - max) * inverse_temperature
            } else {
                f32::NEG_INFINITY
            }
        }));
        codelm_model::ops::exp_in_place(&mut self.probs);
        self.block_sums.clear();
        self.block_sums
            .extend(self.probs.chunks(BLOCK).map(sum_f64));
        let total: f64 = self.block_sums.iter().sum();
        let target = self.rng.next_f64() * total;
        let mut cumulative = 0.0;
        let mut last = None;
        for (b, &block_sum) in self.block_sums.iter().enumerate() {
            if block_sum > 0.0 && target < cumulative + block_sum {
                let block = &self.probs[b * BLOCK..((b + 1) * BLOCK).min(self.probs.len())];
                for (i, &weight) in block.iter().enumerate() {
                    cumulative += f64::from(weight);
                    if weight > 0.0 {
                        last = Some(b * BLOCK + i);
                        if target < cumulative {
                            return Ok((b * BLOCK + i) as u32);
                        }
                    }
                }
                // Rounding: the running sum fell a hair short of the block's sum.
                break;
            }
            cumulative += block_sum;
        }
        // Rounding can leave `target` a hair above the last partial sum.
        let last = last.or_else(|| self.probs.iter().rposition(|&w| w > 0.0));
        // The largest logit has weight 1, so some weight is positive.
        Ok(last.unwrap_or(0) as u32)
    }

    fn apply_repetition_penalty(&mut self, logits: &mut [f32], recent_tokens: &[u32]) {
        let penalty = self.params.repetition_penalty;
        let n_last = self.params.repeat_last_n;
        if penalty == 1.0 || penalty.is_nan() || penalty <= 0.0 || n_last == 0 {
            return;
        }
        let window = &recent_tokens[recent_tokens.len().saturating_sub(n_last)..];
        // Each distinct token is penalised once, however often it repeats.
        self.penalised.clear();
        self.penalised.extend_from_slice(window);
        self.penalised.sort_unstable();
        self.penalised.dedup();
        for &token in &self.penalised {
            if let Some(logit) = logits.get_mut(token as usize) {
                *logit = if *logit > 0.0 {
                    *logit / penalty
                } else {
                    *logit * penalty
                };
            }
        }
    }
}

/// A token id with its log-probability (natural log).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLogprob {
    /// Token id.
    pub token: u32,
    /// Natural-log probability under the softmax of the logits.
    pub logprob: f32,
}

/// What an OpenAI-style `logprobs` answer needs for one position.
#[derive(Debug, Clone, PartialEq)]
pub struct Logprobs {
    /// The token that was emitted.
    pub chosen: TokenLogprob,
    /// The most likely tokens, most likely first, ties by lowest id.
    pub top: Vec<TokenLogprob>,
}

/// Replaces `logits` by their log-softmax, computed with the log-sum-exp
/// trick in `f64`. NaN and infinite inputs come out as negative infinity,
/// and so does everything when no input is finite.
pub fn log_softmax(logits: &mut [f32]) {
    let log_normaliser = log_sum_exp(logits);
    for logit in logits.iter_mut() {
        *logit = match log_normaliser {
            Some(normaliser) if logit.is_finite() => (f64::from(*logit) - normaliser) as f32,
            _ => f32::NEG_INFINITY,
        };
    }
}

/// The log-probability of `token` and of the `n_top` most likely tokens
/// under the softmax of `logits` (at temperature 1, as OpenAI reports them).
///
/// # Errors
///
/// [`Error::TokenOutOfRange`] when `token` is not an index of `logits`, and
/// [`Error::NoFiniteLogits`] when no logit is finite.
pub fn logprobs(logits: &[f32], token: u32, n_top: usize) -> Result<Logprobs> {
    let n_vocab = logits.len();
    let chosen_logit = *logits
        .get(token as usize)
        .ok_or(Error::TokenOutOfRange { token, n_vocab })?;
    let normaliser = log_sum_exp(logits).ok_or(Error::NoFiniteLogits { n_vocab })?;
    let logprob_of = |logit: f32| {
        if logit.is_finite() {
            (f64::from(logit) - normaliser) as f32
        } else {
            f32::NEG_INFINITY
        }
    };
    let mut candidates: Vec<Candidate> = logits
        .iter()
        .enumerate()
        .filter(|(_, logit)| logit.is_finite())
        .map(|(idx, &logit)| Candidate {
            id: idx as u32,
            logit,
        })
        .collect();
    let n_top = n_top.min(candidates.len());
    if n_top > 0 && n_top < candidates.len() {
        candidates.select_nth_unstable_by(n_top - 1, by_logit_desc);
    }
    candidates.truncate(n_top);
    candidates.sort_unstable_by(by_logit_desc);
    Ok(Logprobs {
        chosen: TokenLogprob {
            token,
            logprob: logprob_of(chosen_logit),
        },
        top: candidates
            .iter()
            .map(|c| TokenLogprob {
                token: c.id,
                logprob: logprob_of(c.logit),
            })
            .collect(),
    })
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: u32,
    logit: f32,
}

/// `Σ xs` in f64, in eight interleaved partial sums (a fixed order that
/// vectorises).
fn sum_f64(xs: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += f64::from(x);
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&x| f64::from(x)).sum();
    acc.iter().sum::<f64>() + tail
}

/// Highest logit first; equal logits by lowest id, so every order is total
/// and independent of the unstable sort's choices.
fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (idx, &logit) in logits.iter().enumerate() {
        // Strictly greater, so the lowest id keeps a tie.
        if logit.is_finite() && best.is_none_or(|(_, best_logit)| logit > best_logit) {
            best = Some((idx, logit));
        }
    }
    best.map(|(idx, _)| idx as u32)
}

fn max_logit(candidates: &[Candidate]) -> f32 {
    candidates
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `ln(sum(exp(logits)))` over the finite logits, `None` when there are none.
fn log_sum_exp(logits: &[f32]) -> Option<f64> {
    let max = logits
        .iter()
        .copied()
        .filter(|logit| logit.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return None;
    }
    let max = f64::from(max);
    let sum: f64 = logits
        .iter()
        .filter(|logit| logit.is_finite())
        .map(|&logit| (f64::from(logit) - max).exp())
        .sum();
    Some(max + sum.ln())
}

/// Keeps the smallest most-likely prefix of `candidates` whose probability
/// (at temperature 1) reaches `top_p`, leaving it sorted most likely first.
///
/// Unless `is_sorted`, only a head of the candidates is selected and sorted;
/// the head grows fourfold while it holds less than `top_p` of the mass, so a
/// peaked distribution over 152k tokens sorts a few hundred of them.
fn truncate_top_p(candidates: &mut Vec<Candidate>, top_p: f32, is_sorted: bool) {
    const FIRST_HEAD: usize = 128;
    let n_candidates = candidates.len();
    let max = f64::from(max_logit(candidates));
    let total: f64 = candidates
        .iter()
        .map(|c| (f64::from(c.logit) - max).exp())
        .sum();
    let target = f64::from(top_p) * total;
    let mut n_done = 0;
    let mut cumulative = 0.0;
    let mut n_head = if is_sorted {
        n_candidates
    } else {
        FIRST_HEAD.min(n_candidates)
    };
    loop {
        if !is_sorted {
            let tail = &mut candidates[n_done..];
            let n_new = n_head - n_done;
            if n_new < tail.len() {
                tail.select_nth_unstable_by(n_new - 1, by_logit_desc);
            }
            tail[..n_new].sort_unstable_by(by_logit_desc);
        }
        for idx in n_done..n_head {
            cumulative += (f64::from(candidates[idx].logit) - max).exp();
            if cumulative >= target {
                candidates.truncate(idx + 1);
                return;
            }
        }
        if n_head == n_candidates {
            // Rounding kept the sum a hair below `target`: keep everything.
            return;
        }
        n_done = n_head;
        n_head = (n_head * 4).min(n_candidates);
    }
}

/// xoshiro256** by Blackman and Vigna, seeded through splitmix64 as its
/// authors recommend.
#[derive(Debug, Clone)]
struct Xoshiro256StarStar {
    state: [u64; 4],
}

impl Xoshiro256StarStar {
    fn seed_from_u64(seed: u64) -> Self {
        let mut splitmix = seed;
        let mut state = [0; 4];
        for word in &mut state {
            *word = splitmix64(&mut splitmix);
        }
        Self { state }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` from the top 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn sampler_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Sampler>();
    }

    #[test]
    fn xoshiro_matches_reference_vectors() {
        // First outputs for state [1, 2, 3, 4], from the reference C code.
        let mut rng = Xoshiro256StarStar {
            state: [1, 2, 3, 4],
        };
        let first: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(first, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn splitmix_matches_reference_vector() {
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn next_f64_stays_in_unit_interval() {
        let mut rng = Xoshiro256StarStar::seed_from_u64(7);
        assert!((0..10_000)
            .map(|_| rng.next_f64())
            .all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn greedy_breaks_ties_by_lowest_id_and_skips_nan() {
        let mut logits = vec![f32::NAN, 1.0, 3.0, 3.0, f32::INFINITY];
        let mut sampler = Sampler::new(sampling(0.0));
        assert_eq!(sampler.sample(&mut logits, &[]).unwrap(), 2);
    }

    #[test]
    fn no_finite_logit_is_an_error() {
        for temperature in [0.0, 1.0] {
            let mut sampler = Sampler::new(sampling(temperature));
            let mut empty: Vec<f32> = Vec::new();
            assert!(matches!(
                sampler.sample(&mut empty, &[]),
                Err(Error::NoFiniteLogits { n_vocab: 0 })
            ));
            let mut masked = vec![f32::NEG_INFINITY, f32::NAN];
            assert!(matches!(
                sampler.sample(&mut masked, &[]),
                Err(Error::NoFiniteLogits { n_vocab: 2 })
            ));
        }
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let params = SamplingParams {
            repetition_penalty: 2.0,
            repeat_last_n: 3,
            ..SamplingParams::default()
        };
        let mut sampler = Sampler::new(params);
        let mut logits = vec![4.0, -1.0, 3.0, 1.0];
        // Token 3 is outside the 3-token window, 1 repeats (penalised once),
        // and 99 is outside the vocabulary.
        sampler.sample(&mut logits, &[3, 1, 1, 0, 99]).unwrap();
        assert_eq!(logits, [2.0, -2.0, 3.0, 1.0]);
    }

    #[test]
    fn top_p_selection_matches_full_sort() {
        // A flat-ish distribution forces the head to grow past 128.
        let logits: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 1000) as f32 / 300.0)
            .collect();
        for top_p in [0.0, 0.1, 0.5, 0.9, 0.999] {
            let mut partial: Vec<Candidate> = logits
                .iter()
                .enumerate()
                .map(|(idx, &logit)| Candidate {
                    id: idx as u32,
                    logit,
                })
                .collect();
            let mut full = partial.clone();
            full.sort_unstable_by(by_logit_desc);
            truncate_top_p(&mut partial, top_p, false);
            truncate_top_p(&mut full, top_p, true);
            let ids = |c: &[Candidate]| c.iter().map(|c| c.id).collect::<Vec<_>>();
            assert_eq!(ids(&partial), ids(&full), "top_p {top_p}");
        }
    }

    #[test]
    fn top_k_one_is_greedy() {
        let params = SamplingParams {
            temperature: 5.0,
            top_k: 1,
            ..SamplingParams::default()
        };
        let mut sampler = Sampler::new(params);
        for _ in 0..50 {
            let mut logits = vec![0.0, 0.3, 0.2, 0.3];
            assert_eq!(sampler.sample(&mut logits, &[]).unwrap(), 1);
        }
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let params = SamplingParams {
            temperature: 1.0,
            min_p: 0.5,
            ..SamplingParams::default()
        };
        let mut sampler = Sampler::new(params);
        for _ in 0..200 {
            // p(2) / p(0) = e^-1 < 0.5, p(1) / p(0) = e^-0.5 > 0.5.
            let mut logits = vec![1.0, 0.5, 0.0];
            assert_ne!(sampler.sample(&mut logits, &[]).unwrap(), 2);
        }
    }

    #[test]
    fn draws_follow_the_softmax() {
        let mut sampler = Sampler::new(SamplingParams {
            seed: 42,
            ..sampling(1.0)
        });
        let mut counts = [0usize; 3];
        let n_draws = 20_000;
        for _ in 0..n_draws {
            let mut logits = vec![0.0, 2.0_f32.ln(), f32::NEG_INFINITY];
            counts[sampler.sample(&mut logits, &[]).unwrap() as usize] += 1;
        }
        // Expected 1/3 and 2/3; 20k draws put 4 sigma near 0.013.
        let share = counts[1] as f64 / n_draws as f64;
        assert!((share - 2.0 / 3.0).abs() < 0.02, "share {share}");
        assert_eq!(counts[2], 0);
    }

    /// Over a vocabulary of several blocks, with non-finite logits among
    /// them: the untruncated path draws by the softmax and never a
    /// non-finite token; the truncating path agrees in distribution.
    #[test]
    fn draws_over_many_blocks_follow_the_softmax() {
        let n_vocab = 5000;
        let mut base = vec![-30.0f32; n_vocab];
        base[17] = 0.0;
        base[2500] = 1.0;
        base[4999] = 2.0_f32.ln();
        base[3000] = f32::NAN;
        base[3001] = f32::INFINITY;
        let expected = |id: usize| {
            let w = |l: f32| f64::from(l).exp();
            let total = w(0.0) + w(1.0) + w(2.0_f32.ln()) + (n_vocab - 5) as f64 * w(-30.0);
            w(base[id]) / total
        };
        for top_p in [1.0, 0.999_999] {
            let mut sampler = Sampler::new(SamplingParams {
                seed: 7,
                top_p,
                ..sampling(1.0)
            });
            let mut counts = vec![0usize; n_vocab];
            let n_draws = 20_000;
            for _ in 0..n_draws {
                let mut logits = base.clone();
                counts[sampler.sample(&mut logits, &[]).unwrap() as usize] += 1;
            }
            for id in [17, 2500, 4999] {
                let share = counts[id] as f64 / n_draws as f64;
                assert!(
                    (share - expected(id)).abs() < 0.015,
                    "top_p {top_p} id {id}: {share}"
                );
            }
            assert_eq!(counts[3000] + counts[3001], 0, "top_p {top_p}");
        }
    }

    #[test]
    fn logprobs_report_chosen_and_top() {
        let logits = [0.0, 2.0_f32.ln(), f32::NAN, 2.0_f32.ln()];
        let result = logprobs(&logits, 0, 2).unwrap();
        assert!((result.chosen.logprob - 0.2_f32.ln()).abs() < 1e-6);
        let top: Vec<u32> = result.top.iter().map(|t| t.token).collect();
        assert_eq!(top, [1, 3]);
        assert!((result.top[0].logprob - 0.4_f32.ln()).abs() < 1e-6);
        assert_eq!(
            logprobs(&logits, 2, 0).unwrap().chosen.logprob,
            f32::NEG_INFINITY
        );
        assert!(matches!(
            logprobs(&logits, 4, 1),
            Err(Error::TokenOutOfRange {
                token: 4,
                n_vocab: 4
            })
        ));
    }

    #[test]
    fn log_softmax_normalises() {
        let mut logits = [1.0, 2.0, 3.0, f32::NAN];
        log_softmax(&mut logits);
        let total: f32 = logits[..3].iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(logits[3], f32::NEG_INFINITY);
    }
}
