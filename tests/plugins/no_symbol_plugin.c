/* A shared library that is no sluice plugin: it defines no sluice_plugin symbol (tests/cli/plugin.sh). */
__attribute__((visibility("default"))) int not_a_plugin(int x);
int not_a_plugin(int x) {
    return x + 1;
}
