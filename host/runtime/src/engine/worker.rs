//! One engine worker: a thread that owns its plugin instances, takes
//! batches of messages off its queue, evaluates the matching rules, hands
//! each plugin one batch per round, and routes what comes back.

use super::generation::{Current, Generation};
use super::ingest::{Ingest, MAX_HOPS};
use super::message::{self, Context, Failure};
use super::scan;
use crate::metrics::Metrics;
use crate::plugin::batch::Flat;
use crate::plugin::bindings::Outbound;
use crate::plugin::{BatchBuilder, CallError, Instance, Kind, LoadedPlugin, PluginRuntime};
use crate::rules::{Action, ActionParams, Rule, Target};
use crate::text::same;
use bytes::Bytes;
use rumqttd::local::LinkTx;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a message handed to a plugin came from, so a failure can be sent
/// to the right rule's error action.
struct Origin {
    rule: usize,
    ingest: Arc<Ingest>,
    /// Index of the action, or `None` when this is an error-action delivery.
    action: Option<usize>,
}

/// A plugin's live instance in this worker, with its failure record.
struct Slot {
    plugin: Arc<LoadedPlugin>,
    instance: Option<Instance>,
    failures: VecDeque<Instant>,
    quarantined: Option<String>,
}

pub struct Worker {
    pub id: usize,
    pub rx: flume::Receiver<Ingest>,
    pub current: Arc<Current>,
    pub rt: Arc<PluginRuntime>,
    pub metrics: Arc<Metrics>,
    pub publisher: LinkTx,
    pub max_batch: usize,
    pub checkpoint_every: Duration,
    pub stop: Arc<AtomicBool>,
}

struct State {
    generation: Arc<Generation>,
    slots: BTreeMap<String, Slot>,
    /// Per plugin: the messages of this round and where each came from.
    pending: Pending,
    /// Plugin outputs that re-enter the engine this round.
    local: VecDeque<Ingest>,
    /// Republish actions' messages (topic, payload, and the hops of the
    /// message that made them): published (and fed back) after the
    /// messages being evaluated.
    republished: Vec<(String, Bytes, u8)>,
    matches: Vec<usize>,
}

/// Per plugin: the batch of this round and where each message came from,
/// in the order the plugins were first used in the round. A handful of
/// plugins, looked up for every action of every message: a short vector
/// with a hint at the next one (a rule's actions come in the same order
/// message after message) beats a map.
///
/// A rule's actions that render alike hand their plugins the same message:
/// while a plugin's batch has received exactly the messages another's
/// began with, it is kept as a [`Twin`] of that batch instead of a copy,
/// and shares it when the round is delivered. The shipped telemetry rule's
/// five plugins then get one batch built, not five.
#[derive(Default)]
struct Pending {
    batches: Vec<PendingBatch>,
    /// Where the next lookup looks first.
    hint: usize,
}

struct PendingBatch {
    plugin: String,
    /// The messages, unless `twin` stands for them.
    messages: BatchBuilder,
    twin: Option<Twin>,
    origins: Vec<Origin>,
}

/// The batch is the first `len` messages of batch `of` (which is no twin).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Twin {
    of: usize,
    len: usize,
}

/// A plugin's batch for delivery: its own, or one shared with the plugins
/// whose batch it twinned.
struct ReadyBatch {
    plugin: String,
    messages: Rc<Flat>,
    origins: Vec<Origin>,
}

impl Pending {
    /// The index of the batch for `plugin` (allocates the name only once per round).
    fn index_for(&mut self, plugin: &str) -> usize {
        let at_hint = self
            .batches
            .get(self.hint)
            .is_some_and(|b| same(&b.plugin, plugin));
        let i = if at_hint {
            self.hint
        } else if let Some(i) = self.batches.iter().position(|b| same(&b.plugin, plugin)) {
            i
        } else {
            self.batches.push(PendingBatch {
                plugin: plugin.to_string(),
                messages: BatchBuilder::default(),
                twin: None,
                origins: Vec::new(),
            });
            self.batches.len() - 1
        };
        self.hint = i + 1;
        i
    }

    /// Add a message to `plugin`'s batch: the one `build` appends, or, when
    /// `same_as` is the batch that message was just added to, that same
    /// message (kept as a twin where it can be). Returns the batch's index.
    fn push(
        &mut self,
        plugin: &str,
        same_as: Option<usize>,
        origin: Origin,
        build: impl FnOnce(&mut BatchBuilder),
    ) -> usize {
        let i = self.index_for(plugin);
        let root = same_as.map(|j| self.batches[j].twin.map_or(j, |t| t.of));
        let shared = match (root, self.batches[i].twin) {
            (Some(r), _) if r == i => None,
            (Some(r), Some(t)) if t.of == r && t.len + 1 == self.batches[r].messages.len() => {
                Some(Twin {
                    of: r,
                    len: t.len + 1,
                })
            }
            (Some(r), None)
                if self.batches[i].messages.is_empty() && self.batches[r].messages.len() == 1 =>
            {
                Some(Twin { of: r, len: 1 })
            }
            _ => None,
        };
        if shared.is_none() {
            if let Some(t) = self.batches[i].twin.take() {
                // Its messages part from the other batch's: copy them now.
                let own = self.batches[t.of].messages.prefix(t.len);
                self.batches[i].messages = own;
            }
            build(&mut self.batches[i].messages);
        }
        // Either still (or newly) a twin, or its twin state was taken above.
        let batch = &mut self.batches[i];
        batch.twin = shared;
        batch.origins.push(origin);
        i
    }

    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The round's batches, each finished once; a twin shares its batch,
    /// or gets the part of it that is its own.
    fn into_ready(self) -> Vec<ReadyBatch> {
        let mut batches = self.batches;
        let finished: Vec<Option<Rc<Flat>>> = batches
            .iter_mut()
            .map(|b| {
                b.twin
                    .is_none()
                    .then(|| Rc::new(std::mem::take(&mut b.messages).finish()))
            })
            .collect();
        batches
            .into_iter()
            .zip(&finished)
            .map(|(b, own)| {
                let messages = match (own, b.twin) {
                    (Some(own), _) => own.clone(),
                    (None, Some(t)) => match &finished[t.of] {
                        Some(of) if of.len() == t.len => of.clone(),
                        Some(of) => Rc::new(of.prefix(t.len)),
                        None => Rc::new(Flat::empty()),
                    },
                    (None, None) => Rc::new(Flat::empty()),
                };
                ReadyBatch {
                    plugin: b.plugin,
                    messages,
                    origins: b.origins,
                }
            })
            .collect()
    }
}

/// What a worker has taken off its queue and not yet evaluated.
///
/// The queue is emptied in one go (one lock) when the inbox runs dry, and
/// the inbox is then handed out a round at a time. Taking messages one by
/// one would, on a full queue, wake a waiting listener for every message
/// taken (each frees one slot), so a busy worker and its listeners would
/// trade a thread wake-up per message; emptied at once, the listeners are
/// woken once per queueful. A worker thus holds at most its queue's
/// capacity in its inbox besides what waits in the queue.
#[derive(Default)]
struct Inbox(VecDeque<Ingest>);

impl Inbox {
    /// Move up to `max` messages into `batch`, waiting up to 100 ms for
    /// the first when the inbox and the queue are empty.
    fn take(
        &mut self,
        rx: &flume::Receiver<Ingest>,
        batch: &mut Vec<Ingest>,
        max: usize,
    ) -> Result<(), flume::RecvTimeoutError> {
        if self.0.is_empty() {
            let first = rx.recv_timeout(Duration::from_millis(100))?;
            self.0.push_back(first);
            self.0.extend(rx.drain());
        }
        let n = self.0.len().min(max);
        batch.extend(self.0.drain(..n));
        Ok(())
    }
}

/// The error a payload that is not JSON gives its rules.
fn not_json(e: &serde_json::Error) -> String {
    format!("payload is not valid JSON: {e}")
}

impl Worker {
    pub fn run(mut self) {
        let mut state = State {
            generation: self.current.get(),
            slots: BTreeMap::new(),
            pending: Pending::default(),
            local: VecDeque::new(),
            republished: Vec::new(),
            matches: Vec::new(),
        };
        let mut releases_seen = self.current.release_requests();
        // Checkpoints are staggered: one plugin at a time, spread over the
        // interval, so the pause a checkpoint costs the worker is one
        // plugin's, not all of them at once.
        let mut last_checkpoint = Instant::now();
        let mut next_to_checkpoint = 0usize;
        let mut last_tick = Instant::now();
        let mut batch: Vec<Ingest> = Vec::with_capacity(self.max_batch);
        let mut inbox = Inbox::default();
        loop {
            let stopping = self.stop.load(Relaxed);
            match inbox.take(&self.rx, &mut batch, self.max_batch) {
                Ok(()) => {}
                Err(flume::RecvTimeoutError::Timeout) => {
                    if stopping {
                        break;
                    }
                }
                Err(flume::RecvTimeoutError::Disconnected) => break,
            }
            if self.current.version() != state.generation.number {
                self.swap_generation(&mut state);
            }
            let releases = self.current.release_requests();
            if releases != releases_seen {
                for bucket in self.current.releases_since(releases_seen) {
                    self.release(&mut state, &bucket);
                }
                releases_seen = releases;
                self.current.ack_release();
            }
            if !batch.is_empty() {
                self.round(&mut state, &mut batch);
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                self.tick(&mut state);
            }
            let slots = state.slots.len().max(1) as u32;
            if last_checkpoint.elapsed() >= self.checkpoint_every / slots {
                last_checkpoint = Instant::now();
                self.checkpoint_next(&mut state, &mut next_to_checkpoint);
            }
        }
        self.checkpoint_all(&mut state);
        tracing::debug!(worker = self.id, "engine worker stopped");
    }

    /// Move to the newest generation: checkpoint instances whose plugin
    /// version changes, so the new version starts from their state.
    fn swap_generation(&mut self, state: &mut State) {
        let next = self.current.get();
        let changed: Vec<String> = state
            .slots
            .iter()
            .filter(|(name, slot)| {
                next.plugins
                    .get(*name)
                    .is_none_or(|p| !Arc::ptr_eq(p, &slot.plugin))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in changed {
            if let Some(mut slot) = state.slots.remove(&name) {
                if let Some(instance) = slot.instance.as_mut() {
                    match instance.checkpoint() {
                        Ok(out) => self.route_outputs(state, out, 0),
                        Err(e) => {
                            tracing::warn!(plugin = %name, error = %e, "checkpoint before replacing the plugin failed")
                        }
                    }
                }
                self.metrics.note(&format!("plugin.{name}"), None);
            }
        }
        state.generation = next;
    }

    /// Save and drop the instances of plugins granted `bucket`, so state
    /// reset by an operator is read afresh by the next instance.
    fn release(&mut self, state: &mut State, bucket: &str) {
        let holders: Vec<String> = state
            .slots
            .iter()
            .filter(|(_, slot)| slot.plugin.grants.keyvalue.iter().any(|b| b == bucket))
            .map(|(name, _)| name.clone())
            .collect();
        for name in holders {
            if let Some(slot) = state.slots.get_mut(&name) {
                if let Some(mut instance) = slot.instance.take() {
                    match instance.checkpoint() {
                        Ok(out) => self.route_outputs(state, out, 0),
                        Err(e) => {
                            tracing::warn!(plugin = %name, error = %e, "checkpoint before a state reset failed")
                        }
                    }
                }
            }
        }
    }

    /// Process one batch of incoming messages and everything they cause.
    fn round(&mut self, state: &mut State, batch: &mut Vec<Ingest>) {
        let count = batch.len() as u64;
        state.local.extend(batch.drain(..));
        // Plugin outputs may match rules again: keep going until the round is
        // quiet (MAX_HOPS bounds it).
        while !state.local.is_empty() {
            self.evaluate_local(state);
        }
        self.metrics.messages_processed.fetch_add(count, Relaxed);
    }

    /// Evaluate every queued message, then deliver what that queued.
    fn evaluate_local(&mut self, state: &mut State) {
        while let Some(ingest) = state.local.pop_front() {
            self.evaluate(state, ingest);
        }
        for (topic, payload, hops) in std::mem::take(&mut state.republished) {
            self.route_one(state, topic, payload, hops);
        }
        self.deliver(state);
    }

    /// Evaluate every matching rule for one message and queue the actions.
    fn evaluate(&self, state: &mut State, ingest: Ingest) {
        let generation = state.generation.clone();
        let rules = &generation.rules;
        match &ingest.basic_ingest {
            None => rules.matching(&ingest.topic, &mut state.matches),
            // Basic Ingest: the named rule, whatever its FROM says.
            Some(name) => match rules.by_name(name) {
                Some((index, _)) => {
                    state.matches.clear();
                    state.matches.push(index);
                }
                None => {
                    self.metrics.count("basic_ingest.unknown_rule", 1);
                    let doc = message::error_document(
                        name,
                        &ingest,
                        &[Failure {
                            action: "basic-ingest".into(),
                            message: format!(
                                "no enabled rule named {name:?} (published to $aws/rules/{name}/…)"
                            ),
                        }],
                    );
                    self.dead_letter(&doc, "basic ingest to an unknown rule");
                    return;
                }
            },
        }
        if state.matches.is_empty() {
            return;
        }
        let ingest = Arc::new(ingest);
        // The payload is parsed only for a rule that needs its value, and
        // scanned (no value built) for pass-through rules; at most once each.
        // Checked to be UTF-8 only for a pass-through rule (it forwards the
        // text as it is).
        let mut text: Option<Option<&str>> = None;
        let mut parsed: Option<Result<serde_json::Value, String>> = None;
        let mut scanned: Option<Result<Option<scan::Scan>, String>> = None;
        let mut malformed = false;
        let matches = std::mem::take(&mut state.matches);
        for &rule_index in &matches {
            let Some(rule) = rules.rules.get(rule_index) else {
                continue;
            };
            let passthrough_text = if rule.passthrough {
                *text.get_or_insert_with(|| std::str::from_utf8(&ingest.payload).ok())
            } else {
                None
            };
            if let Some(text) = passthrough_text {
                let result =
                    scanned.get_or_insert_with(|| scan::scan(text).map_err(|e| not_json(&e)));
                // Not JSON: the parse below finds so too, and the statement
                // (a `SELECT *`) outputs the bytes as they came. A repeated
                // key: parse it like any other payload.
                if let Ok(Some(scan)) = result {
                    // The actions' templates do not read the payload.
                    let sql_message =
                        self.sql_message(&ingest, weir_sql::Payload::Binary(&ingest.payload));
                    let output = message::Output::scanned(text, scan);
                    // A pass-through statement has no SET clause.
                    let vars = weir_sql::Variables::default();
                    self.queue_actions(
                        state,
                        rule,
                        rule_index,
                        &ingest,
                        (&sql_message, &vars),
                        &output,
                    );
                    continue;
                }
            }
            let parsed = parsed.get_or_insert_with(|| {
                serde_json::from_slice(&ingest.payload).map_err(|e| not_json(&e))
            });
            let payload = match &*parsed {
                Ok(v) => weir_sql::Payload::Json(v),
                Err(e) if rule.statement.needs_json() => {
                    malformed = true;
                    self.fail(state, rule_index, &ingest, "sql", e.clone());
                    continue;
                }
                // The statement reads no field (at most the raw bytes, as
                // `encode(*, 'base64')`): a payload that is not JSON is
                // what it expects, not malformed.
                Err(_) => weir_sql::Payload::Binary(&ingest.payload),
            };
            let sql_message = self.sql_message(&ingest, payload);
            // The SET clause, once for the statement and its actions.
            let vars = rule.statement.bind(&sql_message);
            let computed;
            let output = match (&*parsed, rule.statement.is_select_star()) {
                // A plain `SELECT *`: the payload itself, neither copied
                // nor serialized again.
                (Ok(payload), true) => {
                    if !rule.statement.where_matches_with(&sql_message, &vars) {
                        continue;
                    }
                    message::Output::passthrough(payload, &ingest.payload)
                }
                // A `SELECT *` of a payload that is not JSON (binary, plain
                // text): the bytes themselves, as AWS IoT forwards them.
                (Err(e), true) => {
                    if !rule.statement.where_matches_with(&sql_message, &vars) {
                        continue;
                    }
                    // Plugins take JSON readings: the rule's plugin actions
                    // fail, once for all of them, and its republish actions
                    // still forward the bytes.
                    if let Some(why) = rule.plugins_refuse(e) {
                        malformed = true;
                        self.fail(state, rule_index, &ingest, "sql", why);
                    }
                    message::Output::raw()
                }
                _ => match rule.statement.eval_with(&sql_message, &vars) {
                    Ok(Some(v)) => {
                        computed = v;
                        message::Output::new(&computed)
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        self.metrics.rule_errors.fetch_add(1, Relaxed);
                        self.fail(state, rule_index, &ingest, "sql", e.to_string());
                        continue;
                    }
                },
            };
            self.queue_actions(
                state,
                rule,
                rule_index,
                &ingest,
                (&sql_message, &vars),
                &output,
            );
        }
        if malformed && ingest.hops == 0 {
            self.metrics.messages_malformed.fetch_add(1, Relaxed);
        }
        state.matches = matches;
    }

    /// What rules and templates evaluate against for `ingest`, with
    /// `payload` standing for its body.
    fn sql_message<'a>(
        &'a self,
        ingest: &'a Ingest,
        payload: weir_sql::Payload<'a>,
    ) -> weir_sql::Message<'a> {
        weir_sql::Message {
            topic: &ingest.topic,
            client_id: &ingest.from.client_id,
            payload,
            timestamp_ms: ingest.received_at,
            principal: ingest.from.principal.as_deref(),
            source_ip: ingest.from.source_ip.as_deref(),
            mqtt: ingest.properties.as_deref(),
            trace_id: None,
            lookup: Some(&*self.rt.services.kv),
        }
    }

    /// Queue one matched rule's output (the rule is `rule_index` of the
    /// generation) for each of its actions.
    fn queue_actions(
        &self,
        state: &mut State,
        rule: &Rule,
        rule_index: usize,
        ingest: &Arc<Ingest>,
        (sql_message, vars): (&weir_sql::Message<'_>, &weir_sql::Variables<'_>),
        output: &message::Output<'_>,
    ) {
        self.metrics.rule_matches.fetch_add(1, Relaxed);
        let ctx = Context {
            ingest,
            sql: sql_message,
        };
        // Rendered once for each run of actions that render alike (the
        // shipped rule's five actions all name the same device); such a
        // run hands its plugins one and the same message.
        let mut rendered: Option<(&Action, Result<ActionParams, String>)> = None;
        // The batch the previous action's message went to.
        let mut previous_batch: Option<usize> = None;
        for (action_index, action) in rule.actions.iter().enumerate() {
            let plugin = match &action.target {
                Target::Plugin(p) => p,
                Target::Republish(topic) => {
                    let payload = if output.raw {
                        ingest.payload.clone()
                    } else {
                        Bytes::copy_from_slice(output.payload.as_bytes())
                    };
                    if let Err(e) =
                        queue_republish(state, topic, sql_message, vars, payload, ingest.hops)
                    {
                        self.fail(state, rule_index, ingest, "republish", e);
                    }
                    continue;
                }
            };
            // Not JSON: the caller reported the rule's plugin actions failed.
            if output.raw {
                continue;
            }
            let (params, alike) = match &rendered {
                Some((previous, params)) if previous.renders_like(action) => (params, true),
                _ => {
                    let params = action
                        .render_params(sql_message, vars)
                        .map_err(|e| e.to_string());
                    (&rendered.insert((action, params)).1, false)
                }
            };
            match params {
                Ok(params) => {
                    let origin = Origin {
                        rule: rule_index,
                        ingest: ingest.clone(),
                        action: Some(action_index),
                    };
                    let same_as = previous_batch.filter(|_| alike);
                    previous_batch = Some(state.pending.push(plugin, same_as, origin, |batch| {
                        message::for_action(rule, params, output, &ctx, batch)
                    }));
                }
                Err(e) => {
                    previous_batch = None;
                    self.fail(state, rule_index, ingest, plugin, e.clone())
                }
            }
        }
    }

    /// Send a failed message to its rule's error action, or to the
    /// dead-letter journal when the rule has none.
    fn fail(
        &self,
        state: &mut State,
        rule_index: usize,
        ingest: &Arc<Ingest>,
        action: &str,
        error: String,
    ) {
        let generation = state.generation.clone();
        let Some(rule) = generation.rules.rules.get(rule_index) else {
            return;
        };
        let doc = message::error_document(
            &rule.name,
            ingest,
            &[Failure {
                action: action.to_string(),
                message: error,
            }],
        );
        match &rule.error_action {
            Some(error_action) => {
                self.metrics.error_action_messages.fetch_add(1, Relaxed);
                let sql_message = self.sql_message(ingest, weir_sql::Payload::Json(&doc));
                let ctx = Context {
                    ingest,
                    sql: &sql_message,
                };
                let output = message::Output::new(&doc);
                // Its templates read no variables (refused at load).
                let vars = weir_sql::Variables::default();
                let plugin = match &error_action.target {
                    Target::Plugin(p) => p,
                    Target::Republish(topic) => {
                        let payload = Bytes::from(output.payload.into_owned());
                        if let Err(e) =
                            queue_republish(state, topic, &sql_message, &vars, payload, ingest.hops)
                        {
                            self.dead_letter(&doc, &format!("error action: {e}"));
                        }
                        return;
                    }
                };
                match error_action.render_params(&sql_message, &vars) {
                    Ok(params) => {
                        let origin = Origin {
                            rule: rule_index,
                            ingest: ingest.clone(),
                            action: None,
                        };
                        state.pending.push(plugin, None, origin, |batch| {
                            message::for_action(rule, &params, &output, &ctx, batch)
                        });
                    }
                    Err(e) => self.dead_letter(&doc, &format!("error action: {e}")),
                }
            }
            None => self.dead_letter(&doc, "rule has no error_action"),
        }
    }

    fn dead_letter(&self, doc: &serde_json::Value, why: &str) {
        self.metrics.dead_letters.fetch_add(1, Relaxed);
        tracing::warn!(reason = why, failure = %doc, "message sent to the dead-letter journal");
        let line = doc.to_string();
        if let Err(e) = self.rt.services.journals.append("dead-letter", &[line]) {
            tracing::error!(error = %e, "cannot write the dead-letter journal");
        }
    }

    /// Hand each plugin its batch for this round: first the processors and
    /// aggregators, then what their outputs cause (an alert reaching the
    /// alert sink), and only then the round's other sinks. An alert never
    /// waits behind a batch of storage writes.
    fn deliver(&mut self, state: &mut State) {
        let plugins = &state.generation.plugins;
        let (sinks, others): (Vec<_>, Vec<_>) = std::mem::take(&mut state.pending)
            .into_ready()
            .into_iter()
            .partition(|b| plugins.get(&b.plugin).is_some_and(|p| p.kind == Kind::Sink));
        self.deliver_each(state, others);
        if !state.local.is_empty() {
            // The outputs' own round. Their hops grow each time, so this
            // nests at most MAX_HOPS deep.
            let queued = std::mem::take(&mut state.pending);
            self.evaluate_local(state);
            state.pending = queued;
        }
        self.deliver_each(state, sinks);
        // Error-action deliveries queued by failures above.
        if !state.pending.is_empty() {
            self.deliver(state);
        }
    }

    /// Call each plugin of `pending` with its batch and route the results.
    fn deliver_each(&mut self, state: &mut State, pending: Vec<ReadyBatch>) {
        for ReadyBatch {
            plugin,
            messages,
            origins,
        } in pending
        {
            if messages.is_empty() {
                // Every message for it failed to render (already routed).
                continue;
            }
            let result = self.call(state, &plugin, |instance| instance.process(&messages));
            self.metrics.plugin_calls.fetch_add(1, Relaxed);
            self.metrics
                .plugin_messages
                .fetch_add(messages.len() as u64, Relaxed);
            match result {
                Ok(outputs) => {
                    let hops = origins.iter().map(|o| o.ingest.hops).max().unwrap_or(0);
                    self.route_outputs(state, outputs, hops);
                }
                Err(error) => {
                    for origin in origins {
                        if origin.action.is_none() {
                            // An error action that fails is not retried.
                            let generation = state.generation.clone();
                            let rule = generation
                                .rules
                                .rules
                                .get(origin.rule)
                                .map(|r| r.name.clone())
                                .unwrap_or_default();
                            let doc = message::error_document(
                                &rule,
                                &origin.ingest,
                                &[Failure {
                                    action: plugin.clone(),
                                    message: error.clone(),
                                }],
                            );
                            self.dead_letter(&doc, "the error action failed too");
                        } else {
                            self.fail(state, origin.rule, &origin.ingest, &plugin, error.clone());
                        }
                    }
                }
            }
        }
    }

    /// Call a plugin with its live instance, replacing a trapped instance and
    /// quarantining a plugin that keeps failing.
    fn call(
        &mut self,
        state: &mut State,
        plugin: &str,
        f: impl FnOnce(&mut Instance) -> Result<Vec<Outbound>, CallError>,
    ) -> Result<Vec<Outbound>, String> {
        let Some(loaded) = state.generation.plugins.get(plugin).cloned() else {
            return Err(format!("plugin {plugin} is not loaded"));
        };
        let slot = state
            .slots
            .entry(plugin.to_string())
            .or_insert_with(|| Slot {
                plugin: loaded.clone(),
                instance: None,
                failures: VecDeque::new(),
                quarantined: None,
            });
        if let Some(why) = &slot.quarantined {
            return Err(format!("plugin {plugin} is quarantined: {why}"));
        }
        if slot.instance.is_none() {
            match Instance::new(&self.rt, loaded) {
                Ok(i) => slot.instance = Some(i),
                Err(e) => return Err(self.record_failure(slot, plugin, e.to_string())),
            }
        }
        let Some(instance) = slot.instance.as_mut() else {
            return Err(format!("plugin {plugin} has no instance"));
        };
        match f(instance) {
            Ok(out) => Ok(out),
            Err(CallError::Plugin(message)) => {
                self.metrics.count(&format!("plugin.{plugin}.errors"), 1);
                Err(format!("plugin {plugin} returned an error: {message}"))
            }
            Err(CallError::Trap(message)) => {
                // A trapped store is never reused.
                slot.instance = None;
                Err(self.record_failure(slot, plugin, message))
            }
        }
    }

    fn record_failure(&self, slot: &mut Slot, plugin: &str, message: String) -> String {
        self.metrics.plugin_failures.fetch_add(1, Relaxed);
        self.metrics.count(&format!("plugin.{plugin}.failures"), 1);
        tracing::error!(plugin, worker = self.id, error = %message, "plugin call failed; instance replaced");
        let now = Instant::now();
        let window = Duration::from_secs(self.rt.limits.failure_window_s);
        slot.failures.push_back(now);
        while slot
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            slot.failures.pop_front();
        }
        if slot.failures.len() >= self.rt.limits.max_failures as usize {
            let why = format!(
                "{} failures within {}s, last: {message}",
                slot.failures.len(),
                self.rt.limits.failure_window_s
            );
            tracing::error!(plugin, reason = %why, "plugin quarantined; its messages go to error actions until it is reloaded");
            self.metrics.note(
                &format!("plugin.{plugin}"),
                Some(format!("quarantined: {why}")),
            );
            slot.quarantined = Some(why);
        }
        format!("plugin {plugin} failed: {message}")
    }

    /// Publish plugin outputs to the broker and feed them back into the engine.
    fn route_outputs(
        &mut self,
        state: &mut State,
        outputs: impl IntoIterator<Item = Outbound>,
        hops: u8,
    ) {
        for out in outputs {
            let payload = Bytes::from(out.payload.into_bytes());
            self.route_one(state, out.topic, payload, hops);
        }
    }

    /// Publish one message a plugin or a republish action made, and feed
    /// it back to the rules unless it has crossed the engine too often.
    fn route_one(&mut self, state: &mut State, topic: String, payload: Bytes, hops: u8) {
        self.metrics.published.fetch_add(1, Relaxed);
        if let Err(e) = crate::broker::publish(&mut self.publisher, &topic, payload.clone()) {
            tracing::error!(error = %e, topic = %topic, "broker refused a plugin publish");
        }
        if hops + 1 >= MAX_HOPS {
            self.metrics.loops_stopped.fetch_add(1, Relaxed);
            tracing::warn!(topic = %topic, "message crossed the engine {MAX_HOPS} times; not fed back (rule loop?)");
            return;
        }
        self.metrics.messages_internal.fetch_add(1, Relaxed);
        state
            .local
            .push_back(Ingest::from_host(topic, payload, hops + 1));
    }

    fn tick(&mut self, state: &mut State) {
        let now = crate::clock::now_ms();
        let aggregators: Vec<String> = state
            .generation
            .plugins
            .iter()
            .filter(|(_, p)| p.kind == Kind::Aggregator)
            .map(|(n, _)| n.clone())
            .collect();
        for name in aggregators {
            match self.call(state, &name, |i| i.tick(now)) {
                Ok(out) => self.route_outputs(state, out, 0),
                Err(e) => tracing::warn!(plugin = %name, error = %e, "tick failed"),
            }
        }
        if !state.local.is_empty() {
            let mut empty = Vec::new();
            self.round(state, &mut empty);
        }
    }

    /// Checkpoint the next plugin in turn (see `run`).
    fn checkpoint_next(&mut self, state: &mut State, next: &mut usize) {
        if state.slots.is_empty() {
            return;
        }
        *next %= state.slots.len();
        let name = state.slots.keys().nth(*next).cloned();
        *next += 1;
        if let Some(name) = name {
            self.checkpoint(state, &[name]);
        }
    }

    /// Ask every live instance to save its state (processors) or flush (sinks).
    fn checkpoint_all(&mut self, state: &mut State) {
        let names: Vec<String> = state.slots.keys().cloned().collect();
        self.checkpoint(state, &names);
    }

    fn checkpoint(&mut self, state: &mut State, names: &[String]) {
        for name in names {
            let live = state
                .slots
                .get(name)
                .is_some_and(|s| s.instance.is_some() && s.quarantined.is_none());
            if !live {
                continue;
            }
            match self.call(state, name, |i| i.checkpoint()) {
                Ok(out) => self.route_outputs(state, out, 0),
                Err(e) => tracing::warn!(plugin = %name, error = %e, "checkpoint failed"),
            }
        }
        if !state.local.is_empty() {
            let mut empty = Vec::new();
            self.round(state, &mut empty);
        }
    }
}

/// Queue a republish action's output for one message: its topic template
/// rendered, and refused (as a device's publish would be) when empty, a
/// filter, or reserved for the host. Published after the round's messages
/// are evaluated, fed back with `hops`.
fn queue_republish(
    state: &mut State,
    template: &weir_sql::Template,
    msg: &weir_sql::Message<'_>,
    vars: &weir_sql::Variables<'_>,
    payload: Bytes,
    hops: u8,
) -> Result<(), String> {
    let topic = template
        .render_cow_with(msg, vars)
        .map_err(|e| format!("republish topic: {e}"))?;
    if let Some(why) = crate::listener::policy::refuse_publish(&topic) {
        return Err(format!("cannot republish to {topic:?}: {why}"));
    }
    state.republished.push((topic.into_owned(), payload, hops));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ingest::Publisher;
    use crate::plugin::batch::{MetricRef, Parts};

    fn origin() -> Origin {
        Origin {
            rule: 0,
            ingest: Arc::new(Ingest {
                topic: "t".into(),
                payload: Bytes::new(),
                from: Publisher::named("c"),
                properties: None,
                basic_ingest: None,
                received_at: 0,
                hops: 0,
            }),
            action: Some(0),
        }
    }

    /// Message `n` of the tests, for device `dev-<n>`.
    fn push_message(builder: &mut BatchBuilder, n: usize) {
        let device = format!("dev-{n}");
        let topic = format!("dt/pump/{device}/telemetry");
        let metrics = [MetricRef {
            name: "rpm".into(),
            value: n as f64,
        }];
        builder.push(&Parts {
            rule: "telemetry",
            topic: &topic,
            client_id: &device,
            device: &device,
            device_type: "pump",
            received_at: n as i64,
            device_time: None,
            metrics: &metrics,
            payload: "{}",
            fields: Some(&[]),
        });
    }

    /// Rounds as (plugin, message, alike-with-the-previous-action) steps;
    /// every plugin's delivered batch must equal one built for it alone.
    fn check(steps: &[(&str, usize, bool)]) -> Pending {
        let mut pending = Pending::default();
        let mut alone: Vec<(String, BatchBuilder)> = Vec::new();
        let mut previous = None;
        for &(plugin, n, alike) in steps {
            let same_as = previous.filter(|_| alike);
            previous = Some(pending.push(plugin, same_as, origin(), |b| push_message(b, n)));
            match alone.iter_mut().find(|(p, _)| p == plugin) {
                Some((_, b)) => push_message(b, n),
                None => {
                    let mut b = BatchBuilder::default();
                    push_message(&mut b, n);
                    alone.push((plugin.to_string(), b));
                }
            }
        }
        let twins: Vec<Option<Twin>> = pending.batches.iter().map(|b| b.twin).collect();
        let ready = Pending {
            batches: std::mem::take(&mut pending.batches),
            hint: 0,
        }
        .into_ready();
        assert_eq!(ready.len(), alone.len());
        for (r, (plugin, b)) in ready.iter().zip(alone) {
            assert_eq!(&r.plugin, &plugin);
            assert_eq!(
                format!("{:?}", r.messages),
                format!("{:?}", b.finish()),
                "{plugin}"
            );
            assert_eq!(r.origins.len(), r.messages.len(), "{plugin}");
        }
        Pending {
            batches: twins
                .into_iter()
                .map(|twin| PendingBatch {
                    plugin: String::new(),
                    messages: BatchBuilder::default(),
                    twin,
                    origins: Vec::new(),
                })
                .collect(),
            hint: 0,
        }
    }

    #[test]
    fn actions_that_render_alike_share_one_batch() {
        // Three messages, each to three plugins alike: one batch built.
        let steps: Vec<(&str, usize, bool)> = (0..3)
            .flat_map(|n| {
                [
                    ("zscore", n, false),
                    ("shadow", n, true),
                    ("archive", n, true),
                ]
            })
            .collect();
        let twins: Vec<_> = check(&steps).batches.iter().map(|b| b.twin).collect();
        let shared = Some(Twin { of: 0, len: 3 });
        assert_eq!(twins, vec![None, shared, shared]);
    }

    #[test]
    fn a_twin_that_parts_ways_gets_its_own_copy() {
        let steps = [
            ("zscore", 0, false),
            ("shadow", 0, true),
            ("archive", 0, true),
            ("zscore", 1, false),
            ("shadow", 1, true),
            // archive misses message 1 and gets message 2 on its own ...
            ("archive", 2, false),
            // ... while shadow stays a twin of zscore.
            ("zscore", 3, false),
            ("shadow", 3, true),
            // Not rendered alike: built, not twinned.
            ("zscore", 4, false),
            ("shadow", 4, false),
            // A plugin first used mid-round cannot twin a longer batch.
            ("zscore", 5, false),
            ("alerts", 5, true),
        ];
        let twins: Vec<_> = check(&steps).batches.iter().map(|b| b.twin).collect();
        assert_eq!(twins, vec![None, None, None, None]);
    }
}
