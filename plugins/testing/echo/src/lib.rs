//! `echo`: a processor that republishes each message's payload on
//! `<prefix>/<device>` (setting `prefix`, default `echo`). Handy for host
//! tests: what goes in comes out, one outbound message per input message.
//!
//! Grants: `publish` to `echo/#` (or `<prefix>/#`).

use weir_plugin::{config, export_processor, Message, Outbound, Processor};

pub struct Echo {
    prefix: String,
}

impl Echo {
    /// The echo of one batch (pure, so it is testable off-host).
    pub fn echo(&self, batch: Vec<Message>) -> Vec<Outbound> {
        batch
            .into_iter()
            .map(|m| Outbound::new(format!("{}/{}", self.prefix, m.device), m.payload))
            .collect()
    }
}

impl Processor for Echo {
    fn new() -> Result<Self, String> {
        let prefix = config::get("prefix").unwrap_or_else(|| "echo".to_string());
        Ok(Echo {
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }

    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        Ok(self.echo(batch))
    }
}

export_processor!(Echo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_payload_per_device() {
        let echo = Echo::new().unwrap();
        let batch = vec![
            Message {
                device: "d1".into(),
                payload: r#"{"a":1}"#.into(),
                ..Default::default()
            },
            Message {
                device: "d2".into(),
                payload: "x".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            echo.echo(batch),
            vec![
                Outbound::new("echo/d1", r#"{"a":1}"#),
                Outbound::new("echo/d2", "x")
            ]
        );
    }
}
