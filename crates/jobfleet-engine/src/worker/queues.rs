//! The queues a worker serves, parsed once from `worker.queues` (`emails=3,default=1`), and the
//! order it fetches them in. It imports only the queue names' rule, so the configuration can
//! check `worker.queues` without importing the worker runtime.

use crate::queue::validate_queue_name;

/// The queues a worker serves: weighted (Sidekiq-style random order per fetch, each queue
/// drawn with probability proportional to its weight) or in strict order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSelection {
    queues: Vec<(String, u32)>,
    strict: bool,
}

impl QueueSelection {
    /// Parses `emails=3,default=1` (weights) or `emails,default` (weight 1 each).
    pub fn parse(spec: &str, strict: bool) -> Result<Self, String> {
        let mut queues: Vec<(String, u32)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => {
                    let w: u32 = w
                        .trim()
                        .parse()
                        .ok()
                        .filter(|w| (1..=1000).contains(w))
                        .ok_or_else(|| format!("weight of {n:?} must be 1 to 1000, got {w:?}"))?;
                    (n.trim(), w)
                }
                None => (part, 1),
            };
            validate_queue_name(name).map_err(|e| e.to_string())?;
            if queues.iter().any(|(q, _)| q == name) {
                return Err(format!("queue {name:?} is listed twice"));
            }
            queues.push((name.to_owned(), weight));
        }
        if queues.is_empty() {
            return Err("no queue given".to_owned());
        }
        Ok(Self { queues, strict })
    }

    /// The same queues, served in strict order or by weight.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The served queues' names, in the configured order.
    pub fn names(&self) -> Vec<String> {
        self.queues.iter().map(|(q, _)| q.clone()).collect()
    }

    /// How many queues are served.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Never true: parsing refuses an empty selection.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// True when the queues are fetched in the listed order rather than at random by weight.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The order in which to try the queues for one fetch, given one random number in (0, 1)
    /// per queue. Weighted order draws without replacement (each key is `u^(1/w)`, largest
    /// first), so a queue of weight 3 comes first three times as often as one of weight 1.
    pub fn order(&self, units: &[f64]) -> Vec<&str> {
        if self.strict || self.queues.len() == 1 {
            return self.queues.iter().map(|(q, _)| q.as_str()).collect();
        }
        let mut keyed: Vec<(f64, &str)> = self
            .queues
            .iter()
            .zip(units.iter().chain(std::iter::repeat(&0.5)))
            .map(|((q, w), u)| {
                (
                    u.clamp(f64::MIN_POSITIVE, 1.0).powf(1.0 / f64::from(*w)),
                    q.as_str(),
                )
            })
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        keyed.into_iter().map(|(_, q)| q).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_weights_and_plain_lists() {
        let s = QueueSelection::parse("emails=3, default=1", false).unwrap();
        assert_eq!(s.names(), ["emails", "default"]);
        assert_eq!(
            QueueSelection::parse("a,b", true)
                .unwrap()
                .order(&[0.9, 0.1]),
            ["a", "b"]
        );
        for bad in ["", "a=0", "a=x", "a,a", "a{b}"] {
            assert!(QueueSelection::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn weighted_order_follows_the_randoms() {
        let s = QueueSelection::parse("emails=3,default=1", false).unwrap();
        // emails: 0.5^(1/3) = 0.79 > default: 0.6
        assert_eq!(s.order(&[0.5, 0.6]), ["emails", "default"]);
        // emails: 0.1^(1/3) = 0.46 < default: 0.9
        assert_eq!(s.order(&[0.1, 0.9]), ["default", "emails"]);
    }

    #[test]
    fn weights_set_how_often_a_queue_comes_first() {
        let s = QueueSelection::parse("emails=3,default=1", false).unwrap();
        let n = 100;
        let mut emails_first = 0;
        for i in 0..n {
            for j in 0..n {
                let u = [
                    (f64::from(i) + 0.5) / f64::from(n),
                    (f64::from(j) + 0.5) / f64::from(n),
                ];
                if s.order(&u)[0] == "emails" {
                    emails_first += 1;
                }
            }
        }
        // Exactly 3/4 in the limit; the grid gives 0.75 +- 0.01.
        let share = f64::from(emails_first) / f64::from(n * n);
        assert!((share - 0.75).abs() < 0.01, "{share}");
    }
}
