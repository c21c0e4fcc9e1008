//! Parsing the limits as docker spells them: `--memory 64m`, `--pids 32`, `--cpus 0.5`.
//! Checked before anything is created, so bad input changes nothing.

use anyhow::{bail, Result};

/// Below this, not even init and a shell start reliably (docker's minimum is 6 MB too).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// The kernel keeps memory counters as signed 64-bit numbers: 8589934591g (8 EiB) at most.
pub const MAX_MEMORY: u64 = i64::MAX as u64;

/// The most processes any cgroup may allow: the kernel's PID_MAX_LIMIT (4194304, 2^22).
pub const MAX_PIDS: u64 = 1 << 22;

/// The CFS period the runtime uses: --cpus 0.5 becomes 50 ms of CPU time every 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;

// ANCHOR: parse_memory
/// `64m`, `1g`, `512k`, `1048576` (bytes); suffixes b, k, m, g in either case, as docker.
pub fn parse_memory(text: &str) -> Result<u64> {
    let invalid = || anyhow::anyhow!("invalid memory size {text:?}: use a number with k, m or g, like 64m");
    let text_lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = match text_lower.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text_lower.split_at(at),
        None => (text_lower.as_str(), ""),
    };
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(invalid()),
    };
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let bytes = number
        .checked_mul(multiplier)
        .filter(|bytes| *bytes <= MAX_MEMORY)
        .ok_or_else(|| anyhow::anyhow!("memory size {text:?} is too large: the most is 8589934591g"))?;
    if bytes < MIN_MEMORY {
        bail!("memory limit {text:?} is too small: a container needs at least 6m to start");
    }
    Ok(bytes)
}
// ANCHOR_END: parse_memory

/// At least 2: init and the command are both processes of the container.
pub fn parse_pids(text: &str) -> Result<u64> {
    match text.trim().parse::<u64>() {
        Ok(n) if (2..=MAX_PIDS).contains(&n) => Ok(n),
        Ok(n) if n > MAX_PIDS => {
            bail!("process limit {text:?} is too large: the kernel allows at most {MAX_PIDS}")
        }
        Ok(_) => bail!("process limit {text:?} is too small: init and the command need at least 2"),
        Err(_) => bail!("invalid process limit {text:?}: use a whole number from 2 to {MAX_PIDS}, like 32"),
    }
}

/// `0.5` is half of one CPU; returns the CPU time in microseconds per CPU_PERIOD_US.
pub fn parse_cpus(text: &str, online_cpus: usize) -> Result<u64> {
    let cpus: f64 = match text.trim().parse() {
        Ok(cpus) if f64::is_finite(cpus) => cpus,
        _ => bail!("invalid CPU count {text:?}: use a number of CPUs, like 0.5"),
    };
    if cpus <= 0.0 {
        bail!("invalid CPU count {text:?}: it must be more than 0");
    }
    if cpus > online_cpus as f64 {
        bail!("invalid CPU count {text:?}: this machine has {online_cpus}");
    }
    let quota = (cpus * CPU_PERIOD_US as f64).round() as u64;
    // The kernel refuses a quota under 1 ms.
    if quota < 1000 {
        bail!("CPU count {text:?} is too small: the least is 0.01");
    }
    Ok(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_beyond_the_kernels_are_refused_with_the_range() {
        assert!(parse_pids("4194304").is_ok());
        let err = parse_pids("5000000").unwrap_err().to_string();
        assert!(err.contains("at most 4194304"), "{err}");
        let err = parse_memory("9999999999g").unwrap_err().to_string();
        assert!(err.contains("the most is 8589934591g"), "{err}");
        assert!(parse_memory("8589934591g").is_ok());
    }

    #[test]
    fn memory_sizes_read_like_dockers() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("8192k").unwrap(), 8 << 20);
        assert_eq!(parse_memory("16777216").unwrap(), 16 << 20);
        assert_eq!(parse_memory("32mb").unwrap(), 32 << 20);
    }

    #[test]
    fn bad_memory_sizes_are_refused_with_the_reason() {
        for (input, reason) in [
            ("", "invalid"),
            ("-1m", "invalid"),
            ("0", "too small"),
            ("1m", "too small"),
            ("12x", "invalid"),
            ("m", "invalid"),
            ("99999999999999999999g", "invalid"),
            ("18446744073709551615g", "too large"),
        ] {
            let err = parse_memory(input).unwrap_err().to_string();
            assert!(err.contains(reason), "{input:?}: {err}");
        }
    }

    #[test]
    fn pids_and_cpus() {
        assert_eq!(parse_pids("32").unwrap(), 32);
        assert!(parse_pids("1").unwrap_err().to_string().contains("too small"));
        assert!(parse_pids("-3").is_err());
        assert_eq!(parse_cpus("0.5", 2).unwrap(), 50_000);
        assert_eq!(parse_cpus("2", 2).unwrap(), 200_000);
        assert!(parse_cpus("3", 2).unwrap_err().to_string().contains("has 2"));
        assert!(parse_cpus("0", 2).is_err());
        assert!(parse_cpus("NaN", 2).is_err());
        assert!(parse_cpus("0.001", 2)
            .unwrap_err()
            .to_string()
            .contains("too small"));
    }
}
