//! Sampling over a Qwen2.5-sized vocabulary: determinism and truncation.

use codelm_generate::{logprobs, Sampler, SamplingParams};

const N_VOCAB: usize = 151_936;

/// Deterministic pseudo-logits for step `step`: roughly normal noise with a
/// planted favourite, token `step`, holding about 95% of the mass.
fn fake_logits(step: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..N_VOCAB)
        .map(|idx| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 40) as f32 / (1u64 << 24) as f32 * 6.0 - 3.0;
            if idx == step {
                noise + 16.0
            } else {
                noise
            }
        })
        .collect()
}

/// Runs `n_steps` of sampling with `params`, feeding back generated tokens
/// for the repetition penalty, and returns the tokens.
fn run(params: &SamplingParams, n_steps: usize) -> Vec<u32> {
    let mut sampler = Sampler::new(params.clone());
    let mut tokens = Vec::new();
    for step in 0..n_steps {
        let mut logits = fake_logits(step);
        let token = sampler.sample(&mut logits, &tokens).unwrap();
        tokens.push(token);
    }
    tokens
}

fn check(params: SamplingParams, expected: &[u32]) {
    assert_eq!(run(&params, expected.len()), expected);
}

fn sampling() -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        seed: 1234,
        ..SamplingParams::default()
    }
}

#[test]
fn greedy_takes_the_planted_maximum() {
    check(SamplingParams::default(), &[0, 1, 2, 3]);
}

#[test]
fn same_seed_same_tokens_for_every_truncation() {
    let variants = [
        sampling(),
        SamplingParams {
            top_k: 40,
            ..sampling()
        },
        SamplingParams {
            top_p: 0.9,
            ..sampling()
        },
        SamplingParams {
            min_p: 0.05,
            ..sampling()
        },
        SamplingParams {
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            temperature: 0.8,
            repetition_penalty: 1.1,
            ..sampling()
        },
    ];
    for params in variants {
        let first = run(&params, 6);
        assert_eq!(run(&params, 6), first, "{params:?}");
    }
}

#[test]
fn different_seeds_diverge_at_high_temperature() {
    let hot = SamplingParams {
        temperature: 1.5,
        ..sampling()
    };
    let other = SamplingParams {
        seed: 99,
        ..hot.clone()
    };
    assert_ne!(run(&hot, 8), run(&other, 8));
}

#[test]
fn token_stream_is_pinned_for_a_seed() {
    // A hot temperature leaves the planted token about a 10% chance.
    // Pins xoshiro256** and the chain's order: a change here changes every
    // seeded completion users have recorded.
    check(
        SamplingParams {
            temperature: 8.0,
            top_k: 50,
            ..sampling()
        },
        &PINNED,
    );
}

const PINNED: [u32; 6] = [0, 124_896, 46_111, 7_991, 18_637, 109_008];

#[test]
fn tight_truncation_returns_the_planted_token() {
    for params in [
        SamplingParams {
            top_k: 1,
            ..sampling()
        },
        SamplingParams {
            top_p: 0.5,
            ..sampling()
        },
        SamplingParams {
            min_p: 0.5,
            ..sampling()
        },
    ] {
        check(params, &[0, 1, 2, 3]);
    }
}

#[test]
fn repetition_penalty_turns_greedy_away_from_a_repeat() {
    let mut sampler = Sampler::new(SamplingParams {
        repetition_penalty: 100.0,
        ..SamplingParams::default()
    });
    let mut logits = fake_logits(0);
    let second_best = {
        let mut sorted: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
        sorted[1].0 as u32
    };
    assert_eq!(sampler.sample(&mut logits, &[0]).unwrap(), second_best);
}

#[test]
fn logprobs_of_the_planted_token_lead_the_top_list() {
    let logits = fake_logits(5);
    let result = logprobs(&logits, 5, 3).unwrap();
    assert_eq!(result.top[0].token, 5);
    assert_eq!(result.top[0].logprob, result.chosen.logprob);
    assert!(result.top[0].logprob > result.top[1].logprob);
    assert!(result.chosen.logprob < 0.0);
}
