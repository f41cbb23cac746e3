# A deterministic perl workload for real_programs.py: hashes, regexes, sort, sprintf, big strings.
use strict;
use warnings;

my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }

my %count;
my @words;
for my $i (1 .. 80000) {
    my $w = join '', map { chr(97 + rnd() % 26) } 1 .. (1 + rnd() % 10);
    push @words, $w;
    $count{$w}++;
}
my @top = (sort { $count{$b} <=> $count{$a} or $a cmp $b } keys %count)[0 .. 9];
print "distinct ", scalar(keys %count), "\n";
print "top ", join(',', map { "$_=$count{$_}" } @top), "\n";

my $text = join ' ', @words;
my @pal = $text =~ /\b(\w)(\w)\w?\2\1\b/g;
print "palindrome-ish ", scalar(@pal), "\n";
(my $upper = $text) =~ s/([aeiou]+)/\U$1/g;
print "upper-len ", length($upper), " ", substr($upper, 0, 60), "\n";

my @sorted = sort { length($a) <=> length($b) or $a cmp $b } @words;
print "sorted ", join(',', @sorted[0 .. 4]), " ... ", join(',', @sorted[-3 .. -1]), "\n";

my %nested;
for my $i (0 .. 20000) { push @{ $nested{ $i % 97 } }, sprintf("%05d:%s", $i, $words[$i]); }
my $total = 0;
$total += scalar @{ $nested{$_} } for keys %nested;
print "nested ", scalar(keys %nested), " ", $total, " ", $nested{42}[-1], "\n";

my $big = 'x' x (8 * 1024 * 1024);
$big .= 'y' x 1024;
substr($big, 0, 4 * 1024 * 1024) = '';
print "big ", length($big), " ", substr($big, -5), "\n";
