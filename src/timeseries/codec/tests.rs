use super::*;
use proptest::prelude::*;

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Floats that matter: NaNs with payloads, ±0, ±infinity, subnormals, extremes, and any bits.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        prop::sample::select(vec![
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            -f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            21.5,
        ]),
        (-100_000i64..100_000, 0u32..4).prop_map(|(i, places)| i as f64 / 10f64.powi(places as i32)),
    ]
}

/// Runs of equal values, the common case in sensor data.
fn runs<T: Clone + std::fmt::Debug>(item: impl Strategy<Value = T>) -> impl Strategy<Value = Vec<T>> {
    prop::collection::vec((item, 1usize..40), 0..40)
        .prop_map(|runs| runs.into_iter().flat_map(|(v, n)| std::iter::repeat_n(v, n)).collect())
}

fn floats() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![prop::collection::vec(float(), 0..600), runs(float())]
}

fn integers() -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        prop::collection::vec(any::<i64>(), 0..600),
        prop::collection::vec(prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1, 1]), 0..300),
        runs(any::<i64>()),
        // Evenly spaced times with jitter and gaps, in microseconds.
        (any::<i32>(), prop::collection::vec((0i64..3, -5_000i64..5_000), 0..600)).prop_map(|(start, steps)| {
            let mut t = start as i64 * 1_000_000;
            steps
                .into_iter()
                .map(|(gap, jitter)| {
                    t += 10_000_000 * (1 + gap * gap * 30) + jitter;
                    t
                })
                .collect()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chimp_round_trips(values in floats()) {
        prop_assert!(same_bits(&chimp::decode(&chimp::encode(&values)).unwrap(), &values));
    }

    #[test]
    fn decimal_round_trips_at_every_exponent(values in floats(), e in 0..=decimal::MAX_EXPONENT) {
        prop_assert!(same_bits(&decimal::decode(&decimal::encode(&values, e)).unwrap(), &values));
    }

    #[test]
    fn floats_round_trip(values in floats()) {
        let encoded = floats::encode(&values);
        floats::codec(&encoded).unwrap();
        prop_assert!(same_bits(&floats::decode(&encoded).unwrap(), &values));
    }

    #[test]
    fn timestamps_round_trip(values in integers()) {
        prop_assert_eq!(timestamps::decode(&timestamps::encode(&values)).unwrap(), values);
    }

    #[test]
    fn integers_round_trip(values in integers()) {
        prop_assert_eq!(ints::decode(&ints::encode(&values)).unwrap(), values);
    }

    #[test]
    fn text_round_trips(values in prop_oneof![
        prop::collection::vec(".{0,12}", 0..300),
        runs(prop::sample::select(vec!["", "dev-1", "dev-2", "δ-sensor", "a\u{0}b"]).prop_map(String::from)),
    ]) {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        prop_assert_eq!(text::decode(&text::encode(&refs)).unwrap(), values);
    }

    /// Damaged input is an error, never a panic or an unbounded allocation.
    #[test]
    fn decoders_survive_damage(values in integers(), floats in floats(), cut in any::<prop::sample::Index>(),
                               flip in any::<prop::sample::Index>(), garbage in prop::collection::vec(any::<u8>(), 0..200)) {
        let texts: Vec<String> = values.iter().map(|v| format!("d{}", v % 7)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = [
            timestamps::encode(&values),
            ints::encode(&values),
            floats::encode(&floats),
            chimp::encode(&floats),
            text::encode(&refs),
            garbage,
        ];
        for encoded in encodings {
            let mut damaged = encoded.clone();
            if !damaged.is_empty() {
                let at = flip.index(damaged.len());
                damaged[at] ^= 0x5a;
            }
            let truncated = &encoded[..cut.index(encoded.len() + 1)];
            for bytes in [&damaged[..], truncated] {
                let _ = timestamps::decode(bytes);
                let _ = ints::decode(bytes);
                let _ = chimp::decode(bytes);
                let _ = decimal::decode(bytes);
                let _ = floats::decode(bytes);
                let _ = text::decode(bytes);
            }
        }
    }
}

/// Bits per value of an encoding.
fn bits_per_value(bytes: usize, n: usize) -> f64 {
    bytes as f64 * 8.0 / n as f64
}

#[test]
fn regular_timestamps_cost_about_a_bit() {
    let times: Vec<i64> = (0..10_000).map(|i| 1_700_000_000_000_000 + i * 10_000_000).collect();
    let bits = bits_per_value(timestamps::encode(&times).len(), times.len());
    assert!(bits < 1.1, "{bits} bits per regular timestamp");
}

#[test]
fn repeated_floats_cost_at_most_nine_bits_and_rounded_readings_choose_decimal() {
    let same = vec![21.5; 10_000];
    let encoded = chimp::encode(&same);
    assert!(bits_per_value(encoded.len(), same.len()) <= 9.1);

    // A random walk in steps of 0.1: decimal scaling at exponent 1 beats Chimp128.
    let mut seed = 7u64;
    let mut t = 200i64;
    let readings: Vec<f64> = (0..10_000)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            t += (seed >> 62) as i64 - 1;
            t as f64 / 10.0
        })
        .collect();
    let encoded = floats::encode(&readings);
    assert_eq!(floats::codec(&encoded).unwrap(), floats::FloatCodec::Decimal { exponent: 1 });
    assert!(encoded.len() < chimp::encode(&readings).len());
    assert!(bits_per_value(encoded.len(), readings.len()) < 3.0);

    // Full-precision values do not scale: Chimp128.
    let noisy: Vec<f64> = readings.iter().map(|r| r + 1.0 / 3.0).collect();
    assert_eq!(floats::codec(&floats::encode(&noisy)).unwrap(), floats::FloatCodec::Chimp128);
}

#[test]
fn chimp_finds_an_equal_value_among_the_last_128() {
    // Two alternating series: each value equals the one two places back.
    let values: Vec<f64> = (0..1000).map(|i| if i % 2 == 0 { 1.0 / 3.0 } else { 2.0 / 7.0 }).collect();
    let encoded = chimp::encode(&values);
    assert!(bits_per_value(encoded.len(), values.len()) < 9.5, "{}", bits_per_value(encoded.len(), values.len()));
    // A cycle of 128 values with distinct low bits: each equals the one 128 places back, the oldest in the
    // window; a cycle of 129 is out of reach.
    let cycle = |period: usize| -> f64 {
        let values: Vec<f64> = (0..20_000).map(|i| 10.0 + ((i % period) as f64 * 0.7316).sin()).collect();
        bits_per_value(chimp::encode(&values).len(), values.len())
    };
    assert!(cycle(128) < 9.5, "{}", cycle(128));
    assert!(cycle(129) > 20.0, "{}", cycle(129));
}

#[test]
fn device_names_become_a_dictionary() {
    let names: Vec<String> = (0..10_000).map(|i| format!("device-{:03}", i % 100)).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let encoded = text::encode(&refs);
    assert_eq!(encoded[0], 0, "dictionary");
    assert!(bits_per_value(encoded.len(), names.len()) < 8.0);
}
