#!/usr/bin/env bash
# Measures how well a Tang character model keeps the five-character form on its own (no --regex)
# and how much it recites: N samples (titles in turn, seeds 1..N), then
#   form     samples whose poem opens with two lines of five characters, a comma, five and a stop
#            (a quatrain, 五言绝句; a longer poem of the form counts too)
#   recited  of the five-character half-lines in those opening lines, how many occur in tang300
#   examples/poems/check.sh MODEL [N] [TEMPERATURE] [EXTRA generate FLAGS...]
# Writes every sample to MODEL/../samples-check.txt and one summary line to stdout.
set -euo pipefail
model="${1:?examples/poems/check.sh MODEL [N] [TEMPERATURE]}"
n="${2:-20}"
temp="${3:-0.7}"
shift $(( $# < 3 ? $# : 3 ))
bin="${DUET_BIN:-target/release/duet}"
ref="${TANG300:-data/external/fortunes-zh/tang300}"
titles=(秋夜 春望 山居 送别 江上 月夜 登高 归雁 夜泊 寒食)
out="$(dirname "$model")/samples-check.txt"
: > "$out"
for ((i = 1; i <= n; i++)); do
    t="${titles[$(( (i - 1) % ${#titles[@]} ))]}"
    "$bin" generate --model "$model" --prompt "《$t》
作者:" --max-new-tokens 48 --temperature "$temp" --seed "$i" "$@" 2>/dev/null >> "$out"
    printf '\n%%\n' >> "$out"
done
perl -CSD -Mutf8 -0777 -e '
    my ($samples, $ref) = @ARGV;
    open my $r, "<:encoding(UTF-8)", $ref or die "$ref: $!";
    my $known = do { local $/; <$r> };
    $known =~ s/\e\[[0-9;]*m//g;
    my %half = map { $_ => 1 } ($known =~ /(\p{Han}{5})/g);
    open my $s, "<:encoding(UTF-8)", $samples or die "$samples: $!";
    my $text = do { local $/; <$s> };
    my ($n, $form, $halves, $recited) = (0, 0, 0, 0);
    for my $poem (split /\n%\n/, $text) {
        next unless $poem =~ /\S/;
        $n++;
        my @lines = split /\n/, $poem;
        my @body = @lines[2 .. $#lines];
        next unless @body >= 2
            && $body[0] =~ /^(\p{Han}{5}),(\p{Han}{5})。$/ && $body[1] =~ /^(\p{Han}{5}),(\p{Han}{5})。$/;
        $form++;
        for my $h (map { /^(\p{Han}{5}),(\p{Han}{5})/ } @body[0, 1]) {
            $halves++;
            $recited++ if $half{$h};
        }
    }
    printf "samples %d  form %d/%d (%.0f%%)  recited half-lines %d/%d\n",
        $n, $form, $n, 100 * $form / ($n || 1), $recited, $halves;
' "$out" "$ref"
