//! The live progress view of an update on a terminal, as Pulumi's interactive display: each
//! resource in flight has a row redrawn in place with a spinner and its elapsed time
//! (`creating (1m12s)`), a counter line sits under them (`37 of 120 done, 4 in progress`), and
//! every finished step, warning and provider log line is printed above the live rows, where it
//! stays. A preview shows the rows and the counter while it runs and leaves nothing behind.
//! Off a terminal, with `--json` or `--non-interactive`, the deploy command prints one line per
//! event instead.
//!
//! `ProgressState` is the whole view as data (rows, counters, the lines printed above, the
//! text of a frame) and needs no terminal, so it is tested by feeding it events.
//! `ProgressView` draws that state with indicatif; it consumes `EngineEvent`s and nothing else,
//! so any reporter can drive it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_core::{StepOp, Urn};
use cairn_engine::{DeployOutcome, EngineEvent, StepRecord};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::commands::render;
use crate::output;

/// The spinner's frames; the last (blank) is indicatif's finished state. The first is the one a
/// frame rendered as text shows.
const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "];

/// At most this many rows in flight are drawn; the counter line still counts the others. A
/// live area taller than the terminal cannot be redrawn in place, and `--parallel 64` would
/// make one.
pub const MAX_LIVE_ROWS: usize = 12;

/// How often the spinners and elapsed times move when no event arrives: often enough to look
/// alive, seldom enough to cost nothing.
const TICK: Duration = Duration::from_millis(120);

/// Where one resource's step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowStatus {
    /// Started at `since`, not finished yet.
    InFlight {
        since: Instant,
    },
    Done,
    Failed,
}

/// One resource the run has touched (default providers, the engine's bookkeeping, have none).
#[derive(Clone, Debug)]
pub struct Row {
    /// The latest step's operation.
    pub op: StepOp,
    pub type_: String,
    pub name: String,
    pub status: RowStatus,
}

/// The counter line's numbers. `done` counts every resource finished without error, unchanged
/// ones included, so that it can reach `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub total: Option<usize>,
    pub done: usize,
    pub in_progress: usize,
    pub failed: usize,
}

/// What one event changed, so a drawing can update only that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Nothing,
    /// Row `index` started (or started again: a replaced resource's old copy is deleted later).
    Started(usize),
    /// Row `index` finished or failed; `line`, if any, goes above the live rows.
    Finished {
        index: usize,
        line: Option<String>,
    },
    /// A warning or a provider log line, which goes above the live rows.
    Message(String),
}

/// The progress view as data.
#[derive(Debug)]
pub struct ProgressState {
    started: Instant,
    total_hint: Option<usize>,
    rows: Vec<Row>,
    by_urn: HashMap<Urn, usize>,
    /// Rows in flight, in the order they started; the first `MAX_LIVE_ROWS` are drawn.
    in_flight: Vec<usize>,
    done: usize,
    failed: usize,
    /// Every line printed above the live rows, in order: what the terminal keeps.
    printed: Vec<String>,
}

impl ProgressState {
    /// An empty view of a run that started at `started` and is expected to touch `total_hint`
    /// resources (known from its preview; `None` when the preview was skipped).
    pub fn new(total_hint: Option<usize>, started: Instant) -> ProgressState {
        ProgressState {
            started,
            total_hint,
            rows: Vec::new(),
            by_urn: HashMap::new(),
            in_flight: Vec::new(),
            done: 0,
            failed: 0,
            printed: Vec::new(),
        }
    }

    /// Applies one event that arrived at `now`.
    pub fn apply(&mut self, event: &EngineEvent, now: Instant) -> Change {
        match event {
            EngineEvent::StepStarted { op, urn, type_ } => {
                if cairn_engine::is_default_provider(urn) {
                    return Change::Nothing;
                }
                let index = self.enter(urn, type_);
                let row = &mut self.rows[index];
                row.op = *op;
                row.status = RowStatus::InFlight { since: now };
                self.in_flight.push(index);
                Change::Started(index)
            }
            EngineEvent::StepFinished(record) => {
                if cairn_engine::is_default_provider(&record.urn) {
                    return Change::Nothing;
                }
                let index = self.enter(&record.urn, &record.type_);
                let row = &mut self.rows[index];
                row.op = record.op;
                if record.error.is_some() {
                    row.status = RowStatus::Failed;
                    self.failed += 1;
                } else {
                    row.status = RowStatus::Done;
                    self.done += 1;
                }
                // Unchanged resources are counted but not listed, as in the summary tree.
                let line = (record.op != StepOp::Same || record.error.is_some())
                    .then(|| finished_line(record));
                if let Some(line) = &line {
                    self.printed.push(line.clone());
                }
                Change::Finished { index, line }
            }
            EngineEvent::Warning(message) => self.message(format!("warning: {message}")),
            EngineEvent::Log {
                urn,
                severity,
                message,
            } => {
                // As the line-per-event output: a provider's info and debug lines go to `cairn
                // logs` only. Indented as the rows, under the spinners' column.
                if *severity >= cairn_provider::LogSeverity::Warning {
                    self.message(format!(
                        "   {} {}: {message}",
                        severity.as_str(),
                        urn.name()
                    ))
                } else {
                    Change::Nothing
                }
            }
        }
    }

    fn message(&mut self, line: String) -> Change {
        self.printed.push(line.clone());
        Change::Message(line)
    }

    /// The row of `urn`, made if new, taken out of whatever count its status was in: the
    /// caller gives it its new status.
    fn enter(&mut self, urn: &Urn, type_: &str) -> usize {
        let Some(index) = self.by_urn.get(urn).copied() else {
            let index = self.rows.len();
            self.rows.push(Row {
                op: StepOp::Same,
                type_: type_.to_owned(),
                name: urn.name().to_owned(),
                status: RowStatus::Done,
            });
            self.by_urn.insert(urn.clone(), index);
            return index;
        };
        match self.rows[index].status {
            RowStatus::InFlight { .. } => self.in_flight.retain(|row| *row != index),
            RowStatus::Done => self.done -= 1,
            RowStatus::Failed => self.failed -= 1,
        }
        index
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The lines printed above the live rows so far.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "the view as text, read by its tests and by reporters to come"
        )
    )]
    pub fn printed(&self) -> &[String] {
        &self.printed
    }

    pub fn counters(&self) -> Counters {
        Counters {
            // A preview's count can fall short (the program changed since); never show fewer
            // than have been seen.
            total: self.total_hint.map(|total| total.max(self.rows.len())),
            done: self.done,
            in_progress: self.in_flight.len(),
            failed: self.failed,
        }
    }

    /// The rows drawn live: the oldest `MAX_LIVE_ROWS` in flight.
    pub fn live_rows(&self) -> &[usize] {
        &self.in_flight[..self.in_flight.len().min(MAX_LIVE_ROWS)]
    }

    /// A live row's text after its spinner, without the elapsed time.
    pub fn row_text(&self, index: usize) -> String {
        let row = &self.rows[index];
        format!(
            "{:<2} {} {} {}",
            row.op.symbol(),
            render::display_type(&row.type_),
            row.name,
            row.op.progressive()
        )
    }

    /// A preview's live row: the step planned (`create`), as its plan column says; nothing is
    /// being created.
    pub fn planned_row_text(&self, index: usize) -> String {
        let row = &self.rows[index];
        format!(
            "{:<2} {} {} {}",
            row.op.symbol(),
            render::display_type(&row.type_),
            row.name,
            row.op.verb()
        )
    }

    /// `37 of 120 done, 4 in progress, 1 failed`.
    pub fn counter_text(&self) -> String {
        let counters = self.counters();
        let mut text = match counters.total {
            Some(total) => format!("{} of {total} done", counters.done),
            None => format!("{} done", counters.done),
        };
        text.push_str(&format!(", {} in progress", counters.in_progress));
        if counters.failed > 0 {
            text.push_str(&format!(", {} failed", counters.failed));
        }
        text
    }

    /// The whole view at `now` as plain text, as the terminal shows it: the lines printed
    /// above, the live rows (with the spinner's first frame), the counter line.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "the view as text, read by its tests and by reporters to come"
        )
    )]
    pub fn frame(&self, now: Instant) -> String {
        let mut lines = self.printed.clone();
        for index in self.live_rows() {
            let since = match self.rows[*index].status {
                RowStatus::InFlight { since } => since,
                RowStatus::Done | RowStatus::Failed => now,
            };
            lines.push(format!(
                " {} {} ({})",
                SPINNER[0],
                self.row_text(*index),
                format_elapsed(now.saturating_duration_since(since))
            ));
        }
        lines.push(format!(
            "   {}, {} elapsed",
            self.counter_text(),
            format_elapsed(now.saturating_duration_since(self.started))
        ));
        lines.join("\n")
    }
}

/// The line a finished step leaves above the live rows: the line-per-event output's, with the
/// step's duration, and a blank where the spinner was so that it lines up with the live rows.
fn finished_line(record: &StepRecord) -> String {
    let status = match &record.error {
        Some(error) => format!("{} failed: {error}", record.op.progressive()),
        None if record.op == StepOp::Same => record.op.past_tense().to_owned(),
        None => format!(
            "{} ({})",
            record.op.past_tense(),
            render::format_duration(record.duration)
        ),
    };
    format!(
        "   {:<2} {} {} {status}",
        record.op.symbol(),
        render::display_type(&record.type_),
        record.urn.name()
    )
}

/// A duration as Go prints it, to the second: `12s`, `1m12s`, `1h2m3s`.
pub fn format_elapsed(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// How many resources an update will touch, from its preview: the counter line's total.
pub fn total_of(preview: &DeployOutcome) -> usize {
    let mut urns: Vec<&Urn> = preview
        .steps
        .iter()
        .filter(|step| !cairn_engine::is_default_provider(&step.urn))
        .map(|step| &step.urn)
        .collect();
    urns.sort_unstable();
    urns.dedup();
    urns.len()
}

/// Whether progress is drawn live: on a terminal (stderr, where progress goes, and not a dumb
/// one), unless machine output (`--json`) or no interaction (`--non-interactive`) is asked for.
pub fn is_live(json: bool, non_interactive: bool) -> bool {
    let is_dumb = crate::env::var(crate::env::TERM).is_some_and(|term| term == "dumb");
    !json && !non_interactive && !is_dumb && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// The drawing: one indicatif bar per live row and one for the counter line.
struct Live {
    multi: MultiProgress,
    counter: ProgressBar,
    /// Row index to its bar.
    bars: HashMap<usize, ProgressBar>,
    /// Whether finished steps, warnings and log lines are printed above the rows. A preview's
    /// view leaves nothing behind, as a preview prints no progress.
    prints: bool,
    /// Restores the terminal's echo when the view ends (dropped with it).
    _echo: QuietControlEcho,
}

/// While the live view is drawn the terminal does not echo control characters as `^C`:
/// indicatif leaves the cursor at the right edge of its last row, so the two characters of a
/// Ctrl-C's echo would wrap onto a new line, and the next redraw would start one line low and
/// leave a stale frame on the screen. Ctrl-C still interrupts; only its echo is quiet. The
/// setting is put back when the view ends, and if the process is killed first, a terminal
/// without `echoctl` is the only trace.
struct QuietControlEcho {
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl QuietControlEcho {
    fn new() -> QuietControlEcho {
        #[cfg(unix)]
        {
            use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
            let stderr = std::io::stderr();
            let Ok(saved) = tcgetattr(&stderr) else {
                return QuietControlEcho { saved: None };
            };
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHOCTL);
            let is_set = tcsetattr(&stderr, OptionalActions::Now, &quiet).is_ok();
            QuietControlEcho {
                saved: is_set.then_some(saved),
            }
        }
        #[cfg(not(unix))]
        QuietControlEcho {}
    }
}

impl Drop for QuietControlEcho {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stderr(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// A consumer of `EngineEvent`s that keeps a `ProgressState` and, on a terminal, draws it.
pub struct ProgressView {
    state: ProgressState,
    live: Option<Live>,
}

impl ProgressView {
    /// A view that only keeps its state (for tests, or a reporter drawing elsewhere).
    pub fn new(total_hint: Option<usize>) -> ProgressView {
        ProgressView {
            state: ProgressState::new(total_hint, Instant::now()),
            live: None,
        }
    }

    /// A view drawn on stderr; `prints`: whether it prints finished steps, warnings and log
    /// lines above its rows (an update) or only shows the rows while it lasts (a preview).
    pub fn on_terminal(total_hint: Option<usize>, prints: bool) -> ProgressView {
        let mut view = ProgressView::new(total_hint);
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let started = view.state.started;
        let counter = multi.add(
            ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("   {msg}, {elapsed_go} elapsed")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner())
                    .with_key("elapsed_go", elapsed_since(started)),
            ),
        );
        counter.set_message(view.state.counter_text());
        // The counter's own tick keeps the elapsed time moving while nothing is in flight.
        counter.enable_steady_tick(TICK);
        output::set_live_view(Some(multi.clone()));
        view.live = Some(Live {
            multi,
            counter,
            bars: HashMap::new(),
            prints,
            _echo: QuietControlEcho::new(),
        });
        view
    }

    pub fn on_event(&mut self, event: &EngineEvent) {
        let change = self.state.apply(event, Instant::now());
        let Some(live) = &mut self.live else {
            return;
        };
        // A finished row's bar goes before its line is printed, or the next redraw would show
        // the step both finished and in flight.
        if matches!(change, Change::Started(_) | Change::Finished { .. }) {
            live.sync(&self.state);
        }
        live.counter.set_message(self.state.counter_text());
        match &change {
            Change::Finished {
                line: Some(line), ..
            }
            | Change::Message(line)
                if live.prints =>
            {
                // Through the one writer that escapes control characters for a terminal; it
                // lifts the live rows while it writes.
                output::progress(line);
            }
            _ => {}
        }
    }

    /// Takes the live rows and the counter line off the screen; what was printed above stays,
    /// and the summary follows it.
    pub fn finish(self) -> ProgressState {
        if let Some(live) = self.live {
            output::set_live_view(None);
            for bar in live.bars.values() {
                bar.finish_and_clear();
            }
            live.counter.finish_and_clear();
            let _ = live.multi.clear();
        }
        self.state
    }
}

impl Live {
    /// Makes the bars match the state's live rows: new rows get a bar above the counter line,
    /// rows no longer live lose theirs.
    fn sync(&mut self, state: &ProgressState) {
        let live_rows = state.live_rows();
        self.bars.retain(|index, bar| {
            let keep = live_rows.contains(index);
            if !keep {
                bar.finish_and_clear();
                self.multi.remove(bar);
            }
            keep
        });
        for index in live_rows {
            if self.bars.contains_key(index) {
                continue;
            }
            let RowStatus::InFlight { since } = state.rows()[*index].status else {
                continue;
            };
            let style = ProgressStyle::with_template(" {spinner} {msg} ({elapsed_go})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .tick_strings(SPINNER)
                .with_key("elapsed_go", elapsed_since(since));
            let bar = self
                .multi
                .insert_before(&self.counter, ProgressBar::new_spinner().with_style(style));
            let text = if self.prints {
                state.row_text(*index)
            } else {
                state.planned_row_text(*index)
            };
            bar.set_message(output::for_terminal(&text, true).into_owned());
            bar.enable_steady_tick(TICK);
            self.bars.insert(*index, bar);
        }
    }
}

/// An indicatif template key showing the time since `since`: a step's own start, not the
/// bar's, since a row may wait for a free place before it is drawn.
fn elapsed_since(
    since: Instant,
) -> impl Fn(&indicatif::ProgressState, &mut dyn std::fmt::Write) + Send + Sync + Clone + 'static {
    move |_: &indicatif::ProgressState, writer: &mut dyn std::fmt::Write| {
        let _ = write!(writer, "{}", format_elapsed(since.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urn(type_: &str, name: &str) -> Urn {
        Urn::new("dev", "demo", None, type_, name)
    }

    fn started(op: StepOp, type_: &str, name: &str) -> EngineEvent {
        EngineEvent::StepStarted {
            op,
            urn: urn(type_, name),
            type_: type_.to_owned(),
        }
    }

    fn finished(op: StepOp, type_: &str, name: &str, seconds: u64) -> EngineEvent {
        let mut record = StepRecord::new(op, urn(type_, name), type_.to_owned(), None);
        record.duration = Duration::from_secs(seconds);
        EngineEvent::StepFinished(Box::new(record))
    }

    fn failed(op: StepOp, type_: &str, name: &str, error: &str) -> EngineEvent {
        let mut record = StepRecord::new(op, urn(type_, name), type_.to_owned(), None);
        record.error = Some(cairn_engine::StepError::provider(error));
        EngineEvent::StepFinished(Box::new(record))
    }

    const COMMAND: &str = "command:local:Command";
    const STACK: &str = "pulumi:pulumi:Stack";

    /// An update of a stack, two commands and a fake resource, at fixed instants: `b` and the
    /// fake are still running at the end, so the frame shows live rows.
    fn midway(t0: Instant) -> ProgressState {
        let at = |seconds: u64| t0 + Duration::from_secs(seconds);
        let mut state = ProgressState::new(Some(6), t0);
        state.apply(&finished(StepOp::Create, STACK, "demo-dev", 0), at(0));
        state.apply(&started(StepOp::Create, COMMAND, "a"), at(0));
        state.apply(&started(StepOp::Create, COMMAND, "b"), at(1));
        state.apply(
            &EngineEvent::Log {
                urn: urn(COMMAND, "a"),
                severity: cairn_provider::LogSeverity::Warning,
                message: "disk almost full".to_owned(),
            },
            at(2),
        );
        state.apply(&finished(StepOp::Create, COMMAND, "a", 3), at(3));
        state.apply(&started(StepOp::Update, "fake:index:Resource", "f"), at(4));
        state.apply(
            &failed(StepOp::Create, COMMAND, "c", "exit status 1"),
            at(5),
        );
        state.apply(&finished(StepOp::Same, COMMAND, "unchanged", 0), at(5));
        state
    }

    #[test]
    fn started_finished_and_failed_events_move_the_counters_and_rows() {
        let t0 = Instant::now();
        let state = midway(t0);
        assert_eq!(
            state.counters(),
            Counters {
                total: Some(6),
                done: 3,
                in_progress: 2,
                failed: 1
            }
        );
        let names: Vec<&str> = state.rows().iter().map(|row| row.name.as_str()).collect();
        assert_eq!(names, ["demo-dev", "a", "b", "f", "c", "unchanged"]);
        assert_eq!(
            state.rows()[2].status,
            RowStatus::InFlight {
                since: t0 + Duration::from_secs(1)
            }
        );
        assert_eq!(state.rows()[4].status, RowStatus::Failed);
        assert_eq!(state.live_rows(), [2, 3]);
        assert_eq!(state.counter_text(), "3 of 6 done, 2 in progress, 1 failed");
        // An unchanged resource is counted but prints nothing.
        assert_eq!(state.printed().len(), 4, "{:#?}", state.printed());
    }

    #[test]
    fn a_resource_started_again_leaves_done_for_in_progress() {
        // A replaced resource: its replacement finishes, then its old copy is deleted.
        let t0 = Instant::now();
        let mut state = ProgressState::new(None, t0);
        state.apply(&started(StepOp::Replace, COMMAND, "a"), t0);
        state.apply(&finished(StepOp::Replace, COMMAND, "a", 1), t0);
        assert_eq!(
            (state.counters().done, state.counters().in_progress),
            (1, 0)
        );
        assert_eq!(
            state.apply(&started(StepOp::Delete, COMMAND, "a"), t0),
            Change::Started(0)
        );
        assert_eq!(
            (state.counters().done, state.counters().in_progress),
            (0, 1)
        );
        assert_eq!(state.counter_text(), "0 done, 1 in progress");
        state.apply(&failed(StepOp::Delete, COMMAND, "a", "gone"), t0);
        assert_eq!(
            state.counters(),
            Counters {
                total: None,
                done: 0,
                in_progress: 0,
                failed: 1
            }
        );
        assert_eq!(state.rows().len(), 1);
    }

    #[test]
    fn default_providers_and_quiet_log_lines_change_nothing() {
        let t0 = Instant::now();
        let mut state = ProgressState::new(Some(1), t0);
        let provider = "pulumi:providers:command";
        assert_eq!(
            state.apply(&started(StepOp::Create, provider, "default"), t0),
            Change::Nothing
        );
        assert_eq!(
            state.apply(&finished(StepOp::Create, provider, "default_1_0_0", 0), t0),
            Change::Nothing
        );
        let info = EngineEvent::Log {
            urn: urn(COMMAND, "a"),
            severity: cairn_provider::LogSeverity::Info,
            message: "hello".to_owned(),
        };
        assert_eq!(state.apply(&info, t0), Change::Nothing);
        assert!(state.rows().is_empty());
        assert_eq!(
            state.apply(&EngineEvent::Warning("careful".to_owned()), t0),
            Change::Message("warning: careful".to_owned())
        );
        assert_eq!(state.counter_text(), "0 of 1 done, 0 in progress");
    }

    #[test]
    fn only_the_oldest_rows_in_flight_are_drawn_and_the_total_grows_with_what_is_seen() {
        let t0 = Instant::now();
        let mut state = ProgressState::new(Some(3), t0);
        for index in 0..MAX_LIVE_ROWS + 3 {
            state.apply(&started(StepOp::Create, COMMAND, &format!("r{index}")), t0);
        }
        assert_eq!(state.live_rows().len(), MAX_LIVE_ROWS);
        assert_eq!(state.live_rows()[0], 0);
        state.apply(&finished(StepOp::Create, COMMAND, "r0", 1), t0);
        // The row that waited takes the freed place.
        assert_eq!(state.live_rows().last(), Some(&MAX_LIVE_ROWS));
        assert_eq!(
            state.counters().total,
            Some(MAX_LIVE_ROWS + 3),
            "the preview's count is only a hint"
        );
    }

    #[test]
    fn a_view_without_a_terminal_keeps_the_state_its_events_make() {
        let mut view = ProgressView::new(Some(2));
        view.on_event(&started(StepOp::Create, COMMAND, "a"));
        view.on_event(&started(StepOp::Create, COMMAND, "b"));
        view.on_event(&finished(StepOp::Create, COMMAND, "a", 2));
        let state = view.finish();
        assert_eq!(state.counter_text(), "1 of 2 done, 1 in progress");
        assert_eq!(
            state.printed(),
            ["   +  command:local:Command a created (2s)"]
        );
    }

    #[test]
    fn a_preview_row_says_what_is_planned_and_an_update_row_what_is_happening() {
        let t0 = Instant::now();
        let mut state = ProgressState::new(None, t0);
        state.apply(&started(StepOp::Replace, COMMAND, "a"), t0);
        assert_eq!(
            state.planned_row_text(0),
            "+- command:local:Command a replace"
        );
        assert_eq!(state.row_text(0), "+- command:local:Command a replacing");
    }

    #[test]
    fn elapsed_times_read_as_go_durations() {
        assert_eq!(format_elapsed(Duration::from_millis(900)), "0s");
        assert_eq!(format_elapsed(Duration::from_secs(59)), "59s");
        assert_eq!(format_elapsed(Duration::from_secs(72)), "1m12s");
        assert_eq!(format_elapsed(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn the_frame_midway_and_at_the_end_as_text() {
        let t0 = Instant::now();
        let mut state = midway(t0);
        let now = t0 + Duration::from_secs(72);
        insta::assert_snapshot!("frame_midway", state.frame(now));
        state.apply(&finished(StepOp::Create, COMMAND, "b", 70), now);
        state.apply(
            &finished(StepOp::Update, "fake:index:Resource", "f", 68),
            now,
        );
        insta::assert_snapshot!("frame_final", state.frame(now));
    }
}
