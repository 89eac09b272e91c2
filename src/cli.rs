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
pub enum Command {
    /// Print a Dockerfile's syntax tree
    Parse(ParseArgs),
    /// Validate a Dockerfile and run the build checks (warnings), or check a kiln program
    Check(CheckArgs),
    /// Rewrite a kiln program in the canonical layout (comments kept)
    Fmt(FmtArgs),
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
    /// Create a tag TARGET that refers to SOURCE
    Tag(TagArgs),
    /// Remove images
    Rmi(RmiArgs),
    /// Remove blobs and cache entries that nothing refers to
    Prune(PruneArgs),
    /// Run a command in a new container
    Run(RunArgs),
    /// Manage named volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Remove containers
    Rm(RmArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Log in to a registry (credentials go to Docker's config.json)
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
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
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print only the image's manifest digest
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
    /// Network: none (a private loopback) or host
    #[arg(long, value_name = "MODE", default_value = "none")]
    pub network: String,
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
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        value_name = "IMAGE [COMMAND] [ARG...]",
        allow_hyphen_values = true
    )]
    pub image_and_args: Vec<String>,
}

#[derive(Debug, Subcommand)]
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
    },
    /// Remove volumes
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Containers (name or id)
    #[arg(required = true)]
    pub containers: Vec<String>,
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
    /// Progress output
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
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
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image (NAME[:TAG], ID or digest)
    pub image: String,
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
    /// The first image (NAME[:TAG], ID, digest, or a tarball path)
    pub a: String,
    /// The second image
    pub b: String,
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
    /// Images to remove
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {}
