fn main() {
    std::process::exit(consulctl::run());
}
