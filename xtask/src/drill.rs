//! `failover-drill`: proves a failover loses no acknowledged commit (the
//! operation is [`crate::ops::drill`]).

use crate::project;
use crate::runner::Runner;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Fail the primary under synchronous write load, fail over, rejoin; prove zero loss.
#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// Faults to inject, comma-separated; rounds cycle through the list
    #[arg(long, value_enum, value_delimiter = ',', default_value = "crash")]
    pub fault: Vec<crate::cli::FaultArg>,
    /// Rounds to run (at least 1); each fails whichever node is primary then
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Leave the failed nodes down instead of rejoining them as standbys
    #[arg(long)]
    pub no_rejoin: bool,
    /// Write the JSON report here
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Seconds of writes before the fault (0 to 600)
    #[arg(long, default_value_t = 3.0, value_parser = crate::project::parse_seconds)]
    pub warmup: f64,
    /// Who fails over: this tool, or Patroni (which detects and promotes by
    /// itself; the drill crashes the leader and only watches)
    #[arg(long, value_enum, default_value_t)]
    pub engine: crate::cli::Engine,
    /// Patroni's DCS timings for the drill (--engine patroni), set on the
    /// running cluster first
    #[arg(long, value_enum, default_value_t)]
    pub patroni_timings: crate::cli::TimingsArg,
    /// Draw the run into this SVG file: RTO and write stall of every round
    /// by fault, and panels (commits per 100 ms, commit latency, the
    /// failover's steps) for the worst rounds and --plot-rounds
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Rounds to draw panel by panel besides the worst, comma-separated
    #[arg(long, value_delimiter = ',', requires = "plot")]
    pub plot_rounds: Vec<u32>,
    /// Write every operation (the writer's and the faults') as JSON Lines,
    /// close to Jepsen's history format (README: "The drill's history")
    #[arg(long, value_name = "FILE.jsonl")]
    pub history: Option<PathBuf>,
    /// How long to wait for each step, in seconds
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub fn run(args: &DrillArgs, runner: &dyn Runner) -> Result<()> {
    let plan = crate::ops::drill::Plan {
        fault: args.fault.iter().map(|f| (*f).into()).collect(),
        rounds: args.rounds,
        no_rejoin: args.no_rejoin,
        report: args.report.clone(),
        warmup: args.warmup,
        engine: args.engine,
        patroni_timings: args.patroni_timings,
        plot: args.plot.clone(),
        plot_rounds: args.plot_rounds.clone(),
        history: args.history.clone(),
        timeout: args.timeout,
    };
    crate::ops::drill::execute(&args.topology.resolve(), &plan, runner).map(|_| ())
}

impl From<crate::cli::FaultArg> for crate::ops::drill::fault::Fault {
    fn from(f: crate::cli::FaultArg) -> Self {
        use crate::cli::FaultArg;
        use crate::ops::drill::fault::Fault;
        match f {
            FaultArg::Crash => Fault::Crash,
            FaultArg::Stop => Fault::Stop,
            FaultArg::SyncStandbyFirst => Fault::SyncStandbyFirst,
            FaultArg::Partition => Fault::Partition,
            FaultArg::RestartOldPrimary => Fault::RestartOldPrimary,
            FaultArg::CancelWait => Fault::CancelWait,
            FaultArg::Freeze => Fault::Freeze,
            FaultArg::SyncStandbyPartition => Fault::SyncStandbyPartition,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::FaultArg;
    use crate::ops::drill::fault::Fault;
    use clap::ValueEnum;

    #[test]
    fn fault_names_match_the_command_line() {
        for (arg, fault) in FaultArg::value_variants().iter().zip(Fault::ALL) {
            let name = arg.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(name, fault.name());
            assert_eq!(Fault::from(*arg), fault);
        }
        assert_eq!(FaultArg::value_variants().len(), Fault::ALL.len());
    }
}
