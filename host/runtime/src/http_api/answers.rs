//! The shadow service's answers, for HTTP requests waiting on them.
//!
//! An HTTP shadow request is published on the request topic with a
//! `clientToken`, like a device's; the service answers on `…/accepted` or
//! `…/rejected` echoing the token. One router link subscribed to every
//! shadow answer hands each to the request registered for its topic and
//! token (a request that stops waiting takes its entry away).

use crate::broker::{from_router, Broker, BrokerError, ROUTER_DOLLAR};
use bytes::Bytes;
use rumqttd::Notification;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch};

/// An answer: accepted or rejected, and its document.
#[derive(Debug)]
pub struct Answer {
    pub accepted: bool,
    pub payload: Bytes,
}

#[derive(Default)]
pub struct Answers {
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
}

/// A registered request; dropping it stops waiting.
pub struct Waiting<'a> {
    answers: &'a Answers,
    key: String,
    pub rx: oneshot::Receiver<Answer>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.answers.lock().remove(&self.key);
    }
}

/// The answer filters, as the router stores `$aws/…` topics.
fn filters() -> [String; 4] {
    let base = format!("{ROUTER_DOLLAR}aws/things/+/shadow");
    [
        format!("{base}/+/accepted"),
        format!("{base}/+/rejected"),
        format!("{base}/name/+/+/accepted"),
        format!("{base}/name/+/+/rejected"),
    ]
}

fn key(request_topic: &str, token: &str) -> String {
    format!("{request_topic}\n{token}")
}

impl Answers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Answer>>> {
        // One insert or remove at a time: a poisoned map is still whole.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribe to the shadow answers; the returned task hands them out
    /// until `stop` changes.
    pub fn start(
        broker: &Broker,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(Arc<Answers>, tokio::task::JoinHandle<()>), BrokerError> {
        let (mut tx, mut rx, _) = broker.link("weir.internal.http-answers", true)?;
        for filter in filters() {
            tx.subscribe(filter)
                .map_err(|e| BrokerError::Link(e.to_string()))?;
        }
        let answers = Arc::new(Answers::default());
        let task_answers = answers.clone();
        let task = tokio::spawn(async move {
            let _tx = tx;
            loop {
                tokio::select! {
                    n = rx.next() => match n {
                        Ok(Some(Notification::Forward(f))) => {
                            let topic = from_router(&f.publish.topic);
                            task_answers.deliver(&topic, f.publish.payload);
                        }
                        Ok(Some(Notification::Unschedule)) => {
                            if rx.wake().await.is_err() {
                                break;
                            }
                        }
                        Ok(Some(Notification::Disconnect(..))) | Err(_) => break,
                        Ok(_) => {}
                    },
                    _ = stop.changed() => break,
                }
            }
        });
        Ok((answers, task))
    }

    /// Wait for the answer to a request on `request_topic` carrying `token`.
    pub fn expect(&self, request_topic: &str, token: &str) -> Waiting<'_> {
        let (tx, rx) = oneshot::channel();
        let key = key(request_topic, token);
        self.lock().insert(key.clone(), tx);
        Waiting {
            answers: self,
            key,
            rx,
        }
    }

    /// Hand an answer published on `topic` to the request waiting for it.
    pub fn deliver(&self, topic: &[u8], payload: Bytes) {
        let Ok(topic) = std::str::from_utf8(topic) else {
            return;
        };
        let (request_topic, accepted) = match topic.rsplit_once('/') {
            Some((t, "accepted")) => (t, true),
            Some((t, "rejected")) => (t, false),
            _ => return,
        };
        #[derive(serde::Deserialize)]
        struct Token<'a> {
            #[serde(rename = "clientToken", borrow)]
            client_token: Option<std::borrow::Cow<'a, str>>,
        }
        let Ok(Token {
            client_token: Some(token),
        }) = serde_json::from_slice::<Token<'_>>(&payload)
        else {
            return;
        };
        if let Some(tx) = self.lock().remove(&key(request_topic, &token)) {
            let _ = tx.send(Answer { accepted, payload });
        }
    }

    /// Requests waiting now.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reach_the_request_with_their_topic_and_token() {
        let answers = Answers::default();
        let t = "$aws/things/lamp/shadow/get";
        let mut mine = answers.expect(t, "tok-1");
        let mut other = answers.expect("$aws/things/desk/shadow/get", "tok-1");
        // Another request's token, another thing, a delta: not ours.
        answers.deliver(
            b"$aws/things/lamp/shadow/get/accepted",
            Bytes::from_static(br#"{"clientToken":"tok-2"}"#),
        );
        answers.deliver(
            b"$aws/things/lamp/shadow/update/delta",
            Bytes::from_static(br#"{"clientToken":"tok-1"}"#),
        );
        assert!(mine.rx.try_recv().is_err());
        answers.deliver(
            b"$aws/things/lamp/shadow/get/rejected",
            Bytes::from_static(br#"{"code":404,"clientToken":"tok-1"}"#),
        );
        let a = mine.rx.try_recv().expect("answered");
        assert!(!a.accepted);
        assert!(other.rx.try_recv().is_err());
        drop(mine);
        drop(other);
        assert_eq!(
            answers.pending(),
            0,
            "a request that stops waiting is forgotten"
        );
    }

    #[test]
    fn filters_cover_classic_and_named_shadows() {
        use weir_sql::topic::topic_matches;
        let f = filters();
        let matches = |t: &str| {
            let router = crate::broker::to_router(t);
            f.iter().any(|f| topic_matches(f, &router))
        };
        assert!(matches("$aws/things/lamp/shadow/update/accepted"));
        assert!(matches("$aws/things/lamp/shadow/name/cfg/delete/rejected"));
        assert!(!matches("$aws/things/lamp/shadow/update/delta"));
        assert!(!matches("$aws/things/lamp/shadow/update/documents"));
    }
}
