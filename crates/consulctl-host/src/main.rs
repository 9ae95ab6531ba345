fn main() {
    std::process::exit(consulctl_host::run());
}
