/* test_readme_example.c — the README's C example, as C: it compiles, runs and trains. */
#include "readme_example.h"

int main(void) {
    run_readme_example();
    return check_report("readme_example");
}
