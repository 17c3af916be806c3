#!/usr/bin/env bash
# Keeps the five-character poems of a fortune file of Tang poems (every line of the body is five
# characters, a comma, five characters and a stop), in the same fortune format.
#   examples/poems/wuyan.sh [IN] [OUT]   defaults: data/external/fortunes-zh/tang300, runs/tang/wuyan/src/tang300-wuyan
set -euo pipefail
in="${1:-data/external/fortunes-zh/tang300}"
out="${2:-runs/tang/wuyan/src/tang300-wuyan}"
mkdir -p "$(dirname "$out")"
perl -CSD -Mutf8 -0777 -ne '
    s/\e\[[0-9;]*m//g;
    for my $poem (split /\n%\n/) {
        my @lines = grep { /\S/ } split /\n/, $poem;
        my @body = @lines[2 .. $#lines];   # after the title and the poet
        next unless @body;
        next if grep { !/^[^，。？！、；]{5}，[^，。？！、；]{5}[。？！]$/ } @body;
        print "$poem\n%\n";
    }' "$in" > "$out"
echo "$(grep -c '^%$' "$out") five-character poems in $out"
