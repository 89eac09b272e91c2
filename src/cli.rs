//! Every command and flag kiln accepts (clap derive). Docker's flag names where Docker has one.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Build container images from Dockerfiles, reproducibly",
    long_about = "kiln builds OCI images from Dockerfiles. The same inputs give the same image \
                  digest on any machine.\n\nExit codes: 0 success, 1 build failure or user \
                  error, 2 bad usage.",
    propagate_version = true
)]
pub struct Cli {
    /// Image store directory [default: $KILN_ROOT, else $XDG_DATA_HOME/kiln, else ~/.local/share/kiln]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Print a Dockerfile's syntax tree
    Parse(ParseArgs),
    /// Validate a Dockerfile and run the build checks (warnings), or check a kiln program
    Check(CheckArgs),
    /// Rewrite a kiln program in the canonical layout (comments kept)
    Fmt(FmtArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    Completion(CompletionArgs),
    /// Write kiln's manual pages (roff): kiln(1) to standard output, or every page to a directory
    Man(ManArgs),
    /// Print the layer plan of a build, with cache keys
    Plan(PlanArgs),
    /// Build an image from a Dockerfile and a context directory
    Build(BuildArgs),
    /// Write images to a tarball (docker-archive + OCI layout)
    Save(SaveArgs),
    /// Load images from a tarball written by `docker save`, `kiln save` or an OCI archive
    Load(LoadArgs),
    /// Make a one-layer image from a root filesystem tarball or directory
    Import(ImportArgs),
    /// List images
    Images(ImagesArgs),
    /// Show an image's configuration, manifest and layers as JSON
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Compare two images: config field by field, then files, layer by layer and merged
    #[command(
        long_about = "Compare two images: the config field by field, then the file trees, \
                      layer by layer and merged, each difference with the history entry that \
                      created it.\n\nA and B are image references or IDs in the store, or \
                      tarball paths (docker-archive or OCI, compressed or not; read into a \
                      temporary store, never into yours). An existing file is a tarball.\n\n\
                      Exit codes: 0 equal, 1 different, 2 error."
    )]
    Diff(DiffArgs),
    /// Say why the steps of the last build of a target missed the cache
    #[command(
        long_about = "For each step of the last build of a target that was not taken from the \
                      cache, say why, compared with the build before it: the instruction, a \
                      build argument, the base image digest, a parent step, or context files \
                      (path, old and new content hash). The target is the Dockerfile and \
                      --target, as given to kiln build."
    )]
    Explain(ExplainArgs),
    /// Rebuild from a provenance file's recorded inputs and check the image digest
    #[command(
        long_about = "Rebuild the image a `kiln build --provenance` file describes, from its \
                      recorded inputs, in a temporary store: first check that the Dockerfile \
                      and the context have the recorded digests, then build without the cache \
                      and compare the manifest digest with the statement's subject.\n\n\
                      Exit codes: 0 the digest matches, 1 it does not (or an input differs), \
                      2 error."
    )]
    VerifyProvenance(VerifyProvenanceArgs),
    /// Create a tag TARGET that refers to SOURCE
    Tag(TagArgs),
    /// Remove images
    Rmi(RmiArgs),
    /// Manage images: ls, inspect, rm, tag, prune, history (the same as images, inspect,
    /// rmi, tag, prune, history)
    #[command(subcommand)]
    Image(ImageCommand),
    /// Show kiln's version: the Client section of docker version
    Version,
    /// Remove blobs and cache entries that nothing refers to
    Prune(PruneArgs),
    /// Run a command in a new container
    Run(RunArgs),
    /// Manage named volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage networks (one shared loopback namespace each; no bridges)
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Run a compose project: config, convert, up, down, ps, logs, build, pull, push, stop, start, restart, rm, exec, run
    Compose(ComposeArgs),
    /// Remove containers
    Rm(RmArgs),
    /// Create a container without starting it
    Create(RunArgs),
    /// Start stopped or created containers (detached, under a supervisor)
    Start(StartArgs),
    /// Stop running containers: the image's STOPSIGNAL, then SIGKILL after a timeout
    Stop(StopArgs),
    /// Stop and start containers again
    Restart(StopArgs),
    /// Send a signal to running containers
    Kill(KillArgs),
    /// Attach this terminal's input and output to a running container
    Attach(AttachArgs),
    /// Block until containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// List containers
    Ps(PsArgs),
    /// Show a detached container's output
    Logs(LogsArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Copy files between a running container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST
    Cp(CpArgs),
    /// Make an image from a container's changes
    Commit(CommitArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// List a container's published ports
    Port(PortArgs),
    /// Show a running container's processes (the host's `ps`, as docker runs it)
    Top(TopArgs),
    /// Freeze every process of running containers (cgroup freezer)
    Pause(PauseArgs),
    /// Thaw paused containers
    Unpause(PauseArgs),
    /// Show containers' resource usage (CPU, memory, network, block I/O, processes)
    Stats(StatsArgs),
    /// Manage containers (prune)
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Log in to a registry (credentials go to Docker's config.json)
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Search a registry for images: refused, as no registry kiln speaks to offers search
    Search(SearchArgs),
}

/// How to reach registries: shared by push, pull, login and build.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Verify registries' TLS certificates
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Directory of extra CA certificates (*.crt) [default: /etc/docker/certs.d/HOST/, /etc/containers/certs.d/HOST/]
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Credentials file [default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json]
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Push every tag of the repository
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// Print only the pushed manifest digest
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image: REGISTRY/REPOSITORY[:TAG] (as tagged in the store)
    pub image: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Pick this platform from a multi-platform image: OS/ARCH[/VARIANT]
    #[arg(
        long,
        value_name = "OS/ARCH[/VARIANT]",
        conflicts_with = "all_platforms"
    )]
    pub platform: Option<String>,
    /// Keep a multi-platform image whole: the index and every platform's image
    #[arg(long)]
    pub all_platforms: bool,
    /// Print only the digest the tag now names (the index's with --all-platforms)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image: NAME[:TAG] or NAME@sha256:DIGEST
    pub image: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// User name
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// The registry host (default: docker.io)
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Credentials file [default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json]
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// The registry host (default: docker.io)
    pub server: Option<String>,
}

/// docker search's flags: checked as docker checks them, then refused (kiln has no search).
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Filter the results: stars=N, is-official=BOOL, is-automated=BOOL
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format the results with a Go template
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// The most results to show (1 to 100; 0 is docker's default, 25)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub limit: u32,
    /// Do not truncate the descriptions
    #[arg(long)]
    pub no_trunc: bool,
    /// What to search for: TERM or REGISTRY/TERM
    pub term: String,
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep standard input open (its end reaches the container)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (K=V, or K to pass kiln's own value)
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read environment variables from a file (K=V lines, # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Bind a host path or a named volume: SRC:DST[:ro|rw]
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub volumes: Vec<String>,
    /// Attach a mount: type=bind|volume|tmpfs,source=..,target=..[,readonly]
    #[arg(long = "mount", value_name = "type=..,target=..")]
    pub mounts: Vec<String>,
    /// Mount a tmpfs: DST[:size=..,mode=..]
    #[arg(long = "tmpfs", value_name = "DST[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (name or uid, optionally :group or :gid)
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Override the image's ENTRYPOINT
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Network: none (a private loopback), host, a kiln network's NAME, or container:NAME
    #[arg(
        long,
        visible_alias = "net",
        value_name = "MODE",
        default_value = "none"
    )]
    pub network: String,
    /// More names for the container on its network (resolving to 127.0.0.1)
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Set metadata on the container (K=V, or K for an empty value)
    #[arg(short = 'l', long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Publish a container port on the host: [IP:]HOST:CONTAINER[/udp]
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CONTAINER")]
    pub publish: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Container host name
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Assign a name to the container
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Run kiln's init as PID 1 (forwards signals, reaps zombies)
    #[arg(long)]
    pub init: bool,
    /// Run in the background under a supervisor and print the container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Pass the signals kiln receives on to the container's PID 1 (not with a terminal, as
    /// docker)
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Restart policy: no, on-failure[:MAX], always, unless-stopped
    #[arg(long, value_name = "POLICY", default_value = "no")]
    pub restart: String,
    /// Log options of a detached container: max-size=SIZE (10m), max-file=N
    #[arg(long = "log-opt", value_name = "K=V")]
    pub log_opts: Vec<String>,
    /// The signal `stop` sends first (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits after the stop signal before SIGKILL (default 10)
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// Write the container's ID to FILE (which must not exist yet)
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Add a line to /etc/hosts: NAME:IP
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_hosts: Vec<String>,
    /// A process limit: NAME=SOFT[:HARD] (nofile, nproc, core, stack, ...; -1 unlimited)
    #[arg(
        long = "ulimit",
        value_name = "NAME=SOFT[:HARD]",
        allow_hyphen_values = true
    )]
    pub ulimits: Vec<String>,
    /// The size of /dev/shm: N[b|k|m|g] (default 64m)
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    #[command(flatten)]
    pub health: HealthArgs,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        value_name = "IMAGE [COMMAND] [ARG...]",
        allow_hyphen_values = true
    )]
    pub image_and_args: Vec<String>,
}

/// `kiln run`'s capabilities, namespaces, and what a container shares with the host and
/// other containers.
#[derive(Debug, Default, Args)]
pub struct SecurityArgs {
    /// Add a Linux capability (CHOWN or CAP_CHOWN, any case; ALL for every one)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (CHOWN or CAP_CHOWN, any case; ALL for every one)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Every capability, no seccomp filter, /proc and /sys unmasked (host devices are not
    /// added; see docs/containers.md)
    #[arg(long)]
    pub privileged: bool,
    /// PID namespace: host, or container:NAME (default: a new one)
    #[arg(long, value_name = "host|container:NAME")]
    pub pid: Option<String>,
    /// Mount the volumes and binds of another container: CONTAINER[:ro|:rw]
    #[arg(long = "volumes-from", value_name = "CONTAINER[:ro|:rw]")]
    pub volumes_from: Vec<String>,
    /// Publish every port the image EXPOSEs on a free port of 127.0.0.1
    #[arg(short = 'P', long)]
    pub publish_all: bool,
}

/// A container's healthcheck, over the image's HEALTHCHECK field by field (docker's flags).
#[derive(Debug, Default, Args)]
pub struct HealthArgs {
    /// The command to check health with (run by /bin/sh -c in the container)
    #[arg(long = "health-cmd", value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between checks (ms|s|m|h; default 30s)
    #[arg(long = "health-interval", value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Longest time a check may run (default 30s)
    #[arg(long = "health-timeout", value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Time to start up before failed checks count (default 0s)
    #[arg(long = "health-start-period", value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Consecutive failures that make the container unhealthy (default 3)
    #[arg(long = "health-retries", value_name = "N")]
    pub health_retries: Option<i64>,
    /// Disable any HEALTHCHECK the image has
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

/// Resource limits of `run` and `create` (the container's cgroup).
#[derive(Debug, Default, Args)]
pub struct ResourceArgs {
    /// Memory limit: N[b|k|m|g]
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap limit: N[b|k|m|g], -1 for unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (a fraction: 1.5)
    #[arg(long, value_name = "F")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Limit the CPU CFS quota (microseconds per period)
    #[arg(long = "cpu-quota", value_name = "N", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit the CPU CFS period (microseconds)
    #[arg(long = "cpu-period", value_name = "N")]
    pub cpu_period: Option<u64>,
    /// Limit the number of processes (-1 for unlimited)
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

/// `pause` and `unpause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Containers (name, id or unique id prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (the default shows running ones)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print one sample and exit (the default refreshes every second)
    #[arg(long)]
    pub no_stream: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// A Go template over {{.Container}} {{.ID}} {{.Name}} {{.CPUPerc}} {{.MemUsage}}
    /// {{.MemPerc}} {{.NetIO}} {{.BlockIO}} {{.PIDs}} ({{json .}}: all); a `table ` prefix
    /// prints a header
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// Containers (name, id or unique id prefix); all running ones when none
    pub containers: Vec<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// Create a network: a new network namespace with only a loopback interface
    Create { name: String },
    /// List networks
    Ls {
        /// Only show names
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Show networks as JSON (docker's shape)
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
        /// Print each network through a Go template (`{{.Name}}`, `{{json .Containers}}`)
        #[arg(short = 'f', long = "format", value_name = "TEMPLATE")]
        format: Option<String>,
    },
    /// Put a stopped container on a network (it joins at its next start)
    Connect {
        network: String,
        container: String,
        /// More names for the container on this network
        #[arg(long = "alias", value_name = "ALIAS")]
        alias: Vec<String>,
    },
    /// Take a stopped container off a network (back to a private loopback)
    Disconnect { network: String, container: String },
    /// Remove networks no container is on
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume
    Create { name: String },
    /// List volumes
    Ls {
        /// Only show names
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Show a volume as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
        /// Print each volume through a Go template (`{{.Mountpoint}}`)
        #[arg(short = 'f', long = "format", value_name = "TEMPLATE")]
        format: Option<String>,
    },
    /// Remove volumes
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove the container's anonymous volumes (`-v /dst`); named volumes stay
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainersArgs {
    /// Containers (name, id or unique id prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container (name, id or unique id prefix)
    pub container: String,
    /// Its new name
    pub new_name: String,
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct TopArgs {
    /// The container (name, id or unique id prefix)
    pub container: String,
    /// Options for ps (default: -ef)
    #[arg(allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container (name, id or unique id prefix)
    pub container: String,
    /// Only this container port: PORT[/tcp|udp]
    pub port: Option<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ContainerCommand {
    /// Remove every container that is not running
    Prune {
        /// Do not ask (kiln never asks; accepted for docker's scripts)
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Follow a symlink at the container's SRC (by default it is copied as a symlink)
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// CONTAINER:PATH or a host path
    pub src: String,
    /// CONTAINER:PATH or a host path
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Author
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// The container (name, id or unique id prefix)
    pub container: String,
    /// NAME[:TAG] for the new image
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Follow the container's output and exit with its status
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach the container's stdin (it was created with -i or -t)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// The key sequence that detaches (a terminal's input only), as docker's: `ctrl-<key>`
    /// or a character, comma-separated
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach stdin
    #[arg(long)]
    pub no_stdin: bool,
    /// The key sequence that detaches (a terminal's input only), as docker's: `ctrl-<key>`
    /// or a character, comma-separated
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Pass the signals kiln receives on to the container's PID 1 (not with a terminal, as
    /// docker)
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Container (name, id or unique id prefix)
    pub container: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL (default: the container's
    /// --stop-timeout, else 10)
    #[arg(short = 't', long = "time", value_name = "SECONDS")]
    pub time: Option<u64>,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send (name or number)
    #[arg(short = 's', long, default_value = "KILL")]
    pub signal: String,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (the default shows running ones)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show the latest created container
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: status=created|running|paused|exited, name=TEXT, id=PREFIX
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Display total file sizes (the container's writes, and the image's with them)
    #[arg(short = 's', long)]
    pub size: bool,
    /// A Go template over {{.ID}} {{.Image}} {{.Command}} {{.CreatedAt}} {{.RunningFor}}
    /// {{.Status}} {{.State}} {{.Ports}} {{.Names}} {{.Labels}} {{.Size}} ({{json .}}: all);
    /// a `table ` prefix prints a header
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output while the container runs
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines from the end to show (a number or "all")
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only output since: an RFC 3339 time, a Unix time, or a duration (10m, 1h30m) ago
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// The container (name, id or unique id prefix)
    pub container: String,
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Keep standard input open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (K=V, or K to pass kiln's own value)
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// User (name or uid, optionally :group or :gid)
    #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run the command in the background: kiln returns once it has started (its output is
    /// discarded, as docker's)
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Internal (exec -d): report the start on descriptor 3
    #[arg(long = "kiln-ready-fd", hide = true)]
    pub ready_fd: bool,
    /// The container, then the command and its arguments
    #[arg(
        required = true,
        num_args = 2..,
        value_name = "CONTAINER COMMAND [ARG...]",
        allow_hyphen_values = true
    )]
    pub container_and_command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Print JSON: one object per instruction, mirroring BuildKit's parse tree
    #[arg(long)]
    pub json: bool,
    /// The Dockerfile
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Only check: exit 1 when the file is not in the canonical layout; write nothing
    #[arg(long)]
    pub check: bool,
    /// The kiln program (a `.kiln` file, or a directory with `build.kiln`; `-` reads
    /// standard input and writes standard output) [default: ./build.kiln]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Set a build-time variable
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,
    /// The Dockerfile, or a kiln program (`.kiln` file, or a directory with `build.kiln`);
    /// default: ./build.kiln when it exists, else ./Dockerfile
    pub file: Option<PathBuf>,
}

/// What selects the Dockerfile, its variables and its target: shared by plan and build.
#[derive(Debug, Args)]
pub struct FrontendArgs {
    /// Name of the Dockerfile, or a kiln program (`FILE.kiln`) (default: CONTEXT/Dockerfile,
    /// else CONTEXT/build.kiln; `-` reads a Dockerfile from standard input)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,
    /// Build this stage, or this exported target of a kiln program (default: the last
    /// stage, or the program's only export)
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub frontend: FrontendArgs,
    /// Print the plan as JSON
    #[arg(long)]
    pub json: bool,
    /// The build context directory
    pub context: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Plain,
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Timestamps: layer mtimes and the image's `created` come from \
                  SOURCE_DATE_EPOCH (seconds since 1970-01-01 UTC), taken from \
                  --build-arg SOURCE_DATE_EPOCH=N or else the environment. When it is unset \
                  they are 0, so the same inputs give the same image on every machine, and \
                  `kiln images` shows the image as created in 1970 (\"56 years ago\" in \
                  2026). To date an image by its sources, set it, e.g. \
                  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) kiln build ."
)]
pub struct BuildArgs {
    #[command(flatten)]
    pub frontend: FrontendArgs,
    /// Name and optionally a tag (NAME[:TAG]); may be repeated
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Do not use the cache
    #[arg(long)]
    pub no_cache: bool,
    /// Set metadata for the image
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Merge the layers this build adds into one
    #[arg(long)]
    pub squash: bool,
    /// Build twice from nothing under varied host conditions and compare byte for byte
    /// (exit 1 and list every difference when the builds differ)
    #[arg(long)]
    pub check: bool,
    /// Print no progress, only the image ID on success (as `docker build -q`)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Progress output
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
    /// Say, for each step not taken from the cache, why (compared with the last build of
    /// the same target in this store)
    #[arg(long)]
    pub explain: bool,
    /// Write a Makefile rule: the --iidfile (or -o tarball) depends on the Dockerfile,
    /// .dockerignore and every context file the build read
    #[arg(long, value_name = "FILE")]
    pub depfile: Option<PathBuf>,
    /// Write an in-toto statement with SLSA v1 provenance of the image
    #[arg(long, value_name = "FILE")]
    pub provenance: Option<PathBuf>,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Also write the image as a tarball: type=oci|docker,dest=FILE
    #[arg(short = 'o', long = "output", value_name = "type=oci|docker,dest=FILE")]
    pub output: Option<String>,
    /// Network mode for RUN steps: host (the default, as Docker gives RUN a network) or none
    #[arg(long, value_name = "MODE", default_value = "default")]
    pub network: String,
    /// Expose a secret to RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    pub secrets: Vec<String>,
    /// Check the registry for newer base images even when the store has them
    #[arg(long)]
    pub pull: bool,
    /// Refuse a target with any impure input (a base image by tag, a networked RUN, a
    /// secret or cache mount, ADD of a URL without --checksum), naming the chain to it
    #[arg(long)]
    pub hermetic: bool,
    /// Export the build cache: type=registry,ref=REF or type=local,dest=DIR, with
    /// mode=min (the image's steps, the default) or mode=max (every stage's)
    #[arg(
        long = "cache-to",
        value_name = "type=registry,ref=REF|type=local,dest=DIR"
    )]
    pub cache_to: Vec<String>,
    /// Use a build cache exported with --cache-to: type=registry,ref=REF (or just REF) or
    /// type=local,src=DIR; may be repeated
    #[arg(
        long = "cache-from",
        value_name = "type=registry,ref=REF|type=local,src=DIR"
    )]
    pub cache_from: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The build context directory
    pub context: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to FILE instead of standard output
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Layer compression inside the tarball
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// Images to save (NAME[:TAG], ID or sha256 digest)
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from FILE instead of standard input
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print only the loaded image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Root filesystem: a tarball (optionally compressed) or a directory
    pub source: PathBuf,
    /// Name the image NAME[:TAG]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (kiln stores no intermediate images, so this is the same list)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ImageCommand {
    /// List images (kiln images)
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Show an image's configuration, manifest and layers as JSON (images only)
    Inspect(InspectArgs),
    /// Remove images (kiln rmi)
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Create a tag TARGET that refers to SOURCE (kiln tag)
    Tag(TagArgs),
    /// Remove blobs and cache entries that nothing refers to (kiln prune)
    Prune(PruneArgs),
    /// Show the history of an image (kiln history)
    History(HistoryArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Each a container (name, ID or unique ID prefix), else an image (NAME[:TAG], ID or
    /// digest), else a volume, else a network
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Print each object through a Go template (`{{.State.Status}}`, `{{json .Config}}`)
    #[arg(short = 'f', long = "format", value_name = "TEMPLATE")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// The image (NAME[:TAG], ID or digest)
    pub image: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Print the comparison as one JSON object
    #[arg(long)]
    pub json: bool,
    /// The first image (NAME[:TAG], ID, digest, or a tarball path); alone, a container
    /// whose changes to its image are listed (A added, C changed, D deleted)
    pub a: String,
    /// The second image
    pub b: Option<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The existing image
    pub source: String,
    /// The new NAME[:TAG]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Untag an image even when containers use it (kept, untagged, while one does), and
    /// remove every tag of an image named by ID
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Images to remove
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask (kiln never asks; accepted for docker's scripts)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove build records older than this (each target's two newest stay): 90d, 12h, 0s
    #[arg(long, value_name = "DURATION", default_value = "90d")]
    pub records_max_age: String,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The stage built (default: the last one)
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Print one JSON object: every step with its reasons
    #[arg(long)]
    pub json: bool,
    /// The build context directory
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyProvenanceArgs {
    /// The build context to rebuild from (default: the one recorded, relative to here)
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,
    /// The Dockerfile (default: the one recorded)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub dockerfile: Option<PathBuf>,
    /// Secrets the build's RUN steps need, as for kiln build (never recorded)
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    pub secrets: Vec<String>,
    /// Progress output of the rebuild
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
    /// The provenance file (kiln build --provenance)
    pub provenance: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_help = "Install for bash: kiln completion bash > /etc/bash_completion.d/kiln")]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(after_help = "Install: kiln man --dir /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write kiln.1 and a kiln-COMMAND.1 page for every command into this directory
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// A compose file; several are merged in order, later over earlier (default:
    /// COMPOSE_FILE, else compose.yaml, compose.yml, docker-compose.yml or
    /// docker-compose.yaml in the project directory, with its *.override.yml if present)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Vec<PathBuf>,
    /// The project name (default: COMPOSE_PROJECT_NAME, the file's name:, the directory's name)
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// The project directory (default: the compose file's directory)
    #[arg(long = "project-directory", value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Enable the services of a profile (repeatable; default: COMPOSE_PROFILES, comma-separated)
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profile: Vec<String>,
    #[command(subcommand)]
    pub command: ComposeCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConvertFormat {
    Compose,
    Kubernetes,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ComposeCommand {
    /// Print the normalised project as YAML (interpolated, defaults filled in)
    Config {
        /// Only check the file: print nothing, exit 0 when it is valid
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Print the service names, one a line (in depends_on order)
        #[arg(long, conflicts_with = "volumes")]
        services: bool,
        /// Print the top-level volume names, one a line
        #[arg(long)]
        volumes: bool,
    },
    /// Convert the project: to compose (as config), or to Kubernetes objects (Deployments,
    /// Services, PersistentVolumeClaims) with every image pinned by its digest in the store
    Convert {
        /// The format to convert to
        #[arg(long = "to", value_enum, default_value = "compose")]
        to: ConvertFormat,
        /// Write one file per object into DIR (default: all objects on stdout, `---` between)
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Start the services in depends_on order, waiting for its conditions (without -d: follow
    /// their output until Ctrl-C or SIGTERM, then stop them)
    Up {
        /// Run the services in the background
        #[arg(short = 'd', long)]
        detach: bool,
        /// Build every service that has build:, even when its image is in the store
        #[arg(long)]
        build: bool,
        /// Run N containers of SERVICE (<project>-<service>-1 ... -N)
        #[arg(long = "scale", value_name = "SERVICE=N")]
        scale: Vec<String>,
        /// Recreate every container, even when its configuration and image are unchanged
        #[arg(long, conflicts_with = "no_recreate")]
        force_recreate: bool,
        /// Keep existing containers, even when their configuration or image changed
        #[arg(long)]
        no_recreate: bool,
        /// Seconds to wait for a container being replaced or removed to stop before SIGKILL
        #[arg(
            short = 't',
            long = "timeout",
            value_name = "SECONDS",
            default_value_t = 10
        )]
        timeout: u64,
        /// Only these services (and the ones they depend on)
        services: Vec<String>,
    },
    /// Build the services that have build: (all, or the ones named)
    Build { services: Vec<String> },
    /// Pull the images of the services that have image: and no build:
    Pull { services: Vec<String> },
    /// Push the images of the services (all, or the ones named) to their registries
    Push { services: Vec<String> },
    /// Stop the services' containers (the stop signal, then SIGKILL after a timeout)
    Stop {
        /// Seconds to wait after the stop signal before SIGKILL
        #[arg(
            short = 't',
            long = "timeout",
            value_name = "SECONDS",
            default_value_t = 10
        )]
        timeout: u64,
        services: Vec<String>,
    },
    /// Start the services' stopped containers
    Start { services: Vec<String> },
    /// Stop and start the services' containers
    Restart {
        /// Seconds to wait after the stop signal before SIGKILL
        #[arg(
            short = 't',
            long = "timeout",
            value_name = "SECONDS",
            default_value_t = 10
        )]
        timeout: u64,
        services: Vec<String>,
    },
    /// Remove the services' stopped containers
    Rm {
        /// Do not ask (kiln never asks; accepted as docker compose's flag)
        #[arg(short = 'f', long)]
        force: bool,
        /// Stop running containers first
        #[arg(short = 's', long)]
        stop: bool,
        services: Vec<String>,
    },
    /// Run a command in a service's running container
    Exec {
        /// Do not allocate a pseudo-terminal (kiln allocates none unless -t is given)
        #[arg(short = 'T')]
        no_tty: bool,
        /// Allocate a pseudo-terminal
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// Set an environment variable (K=V)
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// User (name or uid, optionally :group or :gid)
        #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
        user: Option<String>,
        /// Working directory inside the container
        #[arg(short = 'w', long = "workdir", value_name = "DIR")]
        workdir: Option<String>,
        /// Which container of a scaled service
        #[arg(long, default_value_t = 1)]
        index: u32,
        /// The service, then the command and its arguments
        #[arg(
            required = true,
            num_args = 2..,
            value_name = "SERVICE COMMAND [ARG...]",
            allow_hyphen_values = true
        )]
        service_and_command: Vec<String>,
    },
    /// Run a one-off container of a service (the command replaces the service's command)
    Run {
        /// Remove the container when it exits
        #[arg(long)]
        rm: bool,
        /// Run it in the background
        #[arg(short = 'd', long)]
        detach: bool,
        /// Set an environment variable (K=V)
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// User (name or uid, optionally :group or :gid)
        #[arg(short = 'u', long = "user", value_name = "USER[:GROUP]")]
        user: Option<String>,
        /// Working directory inside the container
        #[arg(short = 'w', long = "workdir", value_name = "DIR")]
        workdir: Option<String>,
        /// Override the service's entrypoint
        #[arg(long)]
        entrypoint: Option<String>,
        /// The service, then the command and its arguments (default: the service's)
        #[arg(
            required = true,
            num_args = 1..,
            value_name = "SERVICE [COMMAND [ARG...]]",
            allow_hyphen_values = true
        )]
        service_and_command: Vec<String>,
    },
    /// List the project's running containers (-a: all)
    Ps {
        /// Also stopped containers (and compose run's)
        #[arg(short = 'a', long)]
        all: bool,
        /// Only the container IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Only these services
        services: Vec<String>,
    },
    /// Print the services' logs
    Logs {
        /// Follow the output until every followed container stops (or Ctrl-C)
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only these services
        services: Vec<String>,
    },
    /// Stop and remove the project's containers and its network
    Down {
        /// Also remove the project's named volumes
        #[arg(short = 'v', long)]
        volumes: bool,
        /// Seconds to wait after the stop signal before SIGKILL
        #[arg(
            short = 't',
            long = "timeout",
            value_name = "SECONDS",
            default_value_t = 10
        )]
        timeout: u64,
    },
}
