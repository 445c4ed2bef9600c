fn main() {
    println!("gunlearn: under construction");
}
